#!/usr/bin/env bash
# `make restore`: run the restore job (the `restore` service, python -m pgbackup restore ARGS) against the
# stack's postgres, or in external mode against your own server, as ADMIN_USER of `make external` with the
# password in database_admin_password. Either way it restores into a new database and replaces an existing
# one only with FORCE=1 (--force). BACKUP=offsite:<id>|offsite:latest restores an offsite copy (PROFILE=offsite)
# when the local volume is gone: AGE_KEY names the age private key, handed to the container on stdin.
# usage: ops/restore.sh RESTORE-ARGS...
#    ie: ops/restore.sh --set latest --source-db app --target-db app_copy
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

restore_main() {
	local dir
	dir="$(ops_secrets_dir)"
	if ops_external; then
		grep -q '[^[:space:]]' "$dir/database_admin_password" 2>/dev/null || ops_die "no password for the restore's admin role in $dir/database_admin_password" \
			"hint: write the password of the role in $dir/restore_database_url (ADMIN_USER of make external) into that file" \
			"hint: it must be able to CREATE DATABASE (and create the roles the dump names): the server's postgres, or rds_superuser's member"
		ops_step "restoring into $(ops_external_target) (external mode)"
	fi
	if restore_offsite "$@"; then
		ops_offsite_key_check
		ops_profile offsite || ops_die "an offsite copy needs PROFILE=offsite (the secret access key and the way out)" \
			"hint: make restore PROFILE=offsite BACKUP=... AGE_KEY=..., or set PROFILE=offsite in compose/.env"
		ops_step "restoring from an offsite copy: fetch, decrypt with $AGE_KEY, verify, restore"
		exec "$OPS_ROOT/ops/compose.sh" run --rm -T restore restore "$@" --identity - <"$AGE_KEY"
	fi
	exec "$OPS_ROOT/ops/compose.sh" run --rm -T restore restore "$@"
}

# usage: restore_offsite RESTORE-ARGS...  -> true when --set names an offsite copy (offsite:<id>|offsite:latest)
restore_offsite() {
	local previous="" arg
	for arg in "$@"; do
		if [[ "$previous" == --set && "$arg" == offsite:* ]]; then
			return 0
		fi
		previous="$arg"
	done
	return 1
}

restore_main "$@"
