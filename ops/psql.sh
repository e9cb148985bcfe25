#!/usr/bin/env bash
# Open psql inside the postgres container as one of the stack's roles, over TCP with the role's password
# (read from the secret inside the container: it never appears on a command line or in the host's env),
# over TLS verified against the stack's CA, as every client of the stack connects.
# usage: ops/psql.sh [postgres|app_owner|mcp_reader|backup_operator] [psql-args...]
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

psql_main() {
	local role="${1:-postgres}"
	shift || : # ignore: no role given means postgres
	local secret
	case "$role" in
		postgres) secret=postgres_password ;;
		app_owner) secret=app_owner_password ;;
		mcp_reader) secret=mcp_reader_password ;;
		backup_operator) secret=backup_password ;;
		*) ops_die "unknown role '$role'" "hint: use ROLE=postgres, app_owner, mcp_reader or backup_operator" ;;
	esac
	if ops_external; then
		ops_die "external mode: the stack runs no postgres to open psql in" \
			"hint: connect to your server as you always do, e.g. psql \"postgresql://$role@$(ops_external_target)?sslmode=verify-full&sslrootcert=<your CA>\""
	fi
	local -a tty=()
	[[ -t 0 && -t 1 ]] || tty=(-T)
	# shellcheck disable=SC2016 # expanded inside the container, on purpose
	exec "$OPS_ROOT/ops/compose.sh" exec "${tty[@]}" postgres bash -c \
		'PGPASSWORD="$(cat "/run/secrets/$1")" PGSSLMODE=verify-full PGSSLROOTCERT=/run/secrets/tls_ca_cert exec psql --no-psqlrc -h 127.0.0.1 -U "$2" -d app "${@:3}"' \
		psql "$secret" "$role" "$@"
}

psql_main "$@"
