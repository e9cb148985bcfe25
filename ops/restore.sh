#!/usr/bin/env bash
# `make restore`: run the restore job (the `restore` service, python -m pgbackup restore ARGS) against the
# stack's postgres, or in external mode against your own server, as ADMIN_USER of `make external` with the
# password in database_admin_password. Either way it restores into a new database and replaces an existing
# one only with FORCE=1 (--force).
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
	exec "$OPS_ROOT/ops/compose.sh" run --rm -T restore restore "$@"
}

restore_main "$@"
