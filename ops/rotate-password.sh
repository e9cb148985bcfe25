#!/usr/bin/env bash
# Rotate a role's password with no downtime for its service: the database learns the new password first,
# then the secret file changes, then the one service that reads it is recreated and awaited.
# usage: ops/rotate-password.sh mcp_reader|backup_operator|app_owner|postgres
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECRETS_DIR="${SECRETS_DIR:-$OPS_ROOT/compose/secrets}"

rotate_main() {
	local role="${1:-}" secret service=""
	case "$role" in
		mcp_reader) secret=mcp_reader_password service=mcp ;;
		backup_operator) secret=backup_password service=backup ;;
		app_owner) secret=app_owner_password ;;
		postgres) secret=postgres_password ;;
		*) ops_die "unknown role '${role}'" "hint: ops/rotate-password.sh mcp_reader|backup_operator|app_owner|postgres" ;;
	esac
	local new_password
	new_password="$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"
	ops_step "setting a new password for role $role"
	# The new password travels on stdin and into psql through its environment (\getenv): never argv.
	# shellcheck disable=SC2016 # expanded inside the container, on purpose
	printf '%s\n' "$new_password" | "$OPS_ROOT/ops/compose.sh" exec -T postgres bash -c '
		set -Eeuo pipefail
		IFS= read -r NEW_PASSWORD
		export NEW_PASSWORD
		PGPASSWORD="$(cat /run/secrets/postgres_password)" psql --no-psqlrc -q -h 127.0.0.1 -U postgres -d app \
			-v ON_ERROR_STOP=1 -v role="$1" <<-"SQL"
			\getenv pw NEW_PASSWORD
			ALTER ROLE :"role" PASSWORD :'"'"'pw'"'"';
		SQL' rotate "$role"
	# keep the file's owner and mode: truncate and write in place
	printf '%s\n' "$new_password" >"$SECRETS_DIR/$secret"
	ops_note "updated $SECRETS_DIR/$secret"
	if [[ -n "$service" ]]; then
		ops_step "recreating $service so it reads the new password"
		"$OPS_ROOT/ops/compose.sh" up -d --no-deps --force-recreate "$service"
		"$OPS_ROOT/ops/wait-healthy.sh" "$service"
	fi
}

rotate_main "$@"
