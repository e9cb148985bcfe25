#!/usr/bin/env bash
# PgBouncer's auth file from the stack's secrets, in tmpfs, then PgBouncer. Each line is `"role" "password"`:
# PgBouncer checks a client's SCRAM exchange against it and logs in to PostgreSQL with SCRAM in turn, so the
# password never crosses the network and no verifier is copied out of pg_authid.
#   PGBOUNCER_ROLES  the roles that may come through, as role=secret-file pairs (default: the MCP reader)
set -Eeuo pipefail

PGBOUNCER_ROLES="${PGBOUNCER_ROLES:-mcp_reader=/run/secrets/mcp_reader_password}"
AUTH_FILE=/tmp/pgbouncer-users.txt

quote() { printf '"%s"' "${1//\"/\"\"}"; }

(
	umask 077
	: >"$AUTH_FILE"
	for pair in $PGBOUNCER_ROLES; do
		role="${pair%%=*}"
		file="${pair#*=}"
		if [[ ! -r "$file" ]]; then
			printf 'pgbouncer: error: unable to read the password of %s (%s)\n    hint: make up creates it (ops/secrets.sh)\n' "$role" "$file" >&2
			exit 1
		fi
		printf '%s %s\n' "$(quote "$role")" "$(quote "$(<"$file")")" >>"$AUTH_FILE"
	done
)
exec pgbouncer /etc/pgbouncer/pgbouncer.ini "$@"
