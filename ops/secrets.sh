#!/usr/bin/env bash
# Generate the stack's secrets on first use: strong random values in compose/secrets/, mode 0600, owned
# by the uid the services run as (999) so their containers can read them with every capability
# dropped. Existing files are never overwritten (rotation: runbooks/rotate-secrets.md).
#   postgres_password     superuser          app_owner_password   application schema owner
#   mcp_reader_password   MCP server's role  backup_password      backup operator
#   mcp_api_keys          `name:key` lines the MCP server accepts as bearer tokens
# usage: ops/secrets.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECRETS_DIR="${SECRETS_DIR:-$OPS_ROOT/compose/secrets}"

# usage: secrets_random BYTES
# URL-safe random text from the kernel's CSPRNG (no characters that need quoting anywhere).
secrets_random() {
	head -c "$1" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# usage: secrets_write NAME CONTENT
secrets_write() {
	local path="$SECRETS_DIR/$1"
	if [[ -s "$path" ]]; then
		return 0
	fi
	(
		umask 077
		printf '%s\n' "$2" >"$path.tmp"
	)
	mv "$path.tmp" "$path"
	ops_note "generated $path"
}

# usage: secrets_fix_owner
# 0600 and owned by the services' uid. Without root we cannot chown: the files stay ours and are made
# readable (the directory itself stays 0700), with a warning.
secrets_fix_owner() {
	local path
	for path in "$SECRETS_DIR"/*; do
		[[ "$(basename "$path")" == README.md ]] && continue
		if ops_is_root; then
			chown "$OPS_SERVICE_UID:$OPS_SERVICE_UID" "$path"
			chmod 0600 "$path"
		elif [[ "$(stat -c %u "$path")" != "$OPS_SERVICE_UID" ]]; then
			chmod 0644 "$path"
			ops_warn "$path is mode 0644 so that uid $OPS_SERVICE_UID in the containers can read it (run make up as root once for 0600)"
		fi
	done
}

secrets_main() {
	ops_step "checking secrets in $SECRETS_DIR"
	mkdir -p "$SECRETS_DIR"
	chmod 0700 "$SECRETS_DIR" 2>/dev/null || : # ignore: the checkout may belong to another user
	local role
	for role in postgres app_owner mcp_reader backup; do
		secrets_write "${role}_password" "$(secrets_random 32)"
	done
	secrets_write mcp_api_keys "$(printf '# name:key, one per line; the name goes to the audit log\ndefault:%s' "$(secrets_random 32)")"
	secrets_fix_owner
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	secrets_main "$@"
fi
