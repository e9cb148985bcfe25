#!/usr/bin/env bash
# `make external URL=... CA=...`: point the stack at a PostgreSQL it does not own; `make bundled`: back to
# its own. Writes (or removes) the connection secrets beside the passwords; compose/external.yaml uses them
# and ops/compose.sh layers that file whenever mcp_database_url exists. Takes effect at the next `make up`.
#
#   URL         postgresql://HOST[:PORT][,HOST2[:PORT2]...]/DATABASE[?PARAMS]: where the server is, without a
#               user or password (the users are the roles `make reader-role` creates; their passwords stay in
#               their own secret files). PARAMS are libpq's (target_session_attrs, load_balance_hosts, ...);
#               sslmode defaults to verify-full.
#   CA          the CA certificate that signed the server's certificate (a PEM file, copied to
#               database_ca.crt), or `system` for a server whose certificate a public CA signed
#   ADMIN_USER  the role `make restore` connects as to create databases (default postgres); its password
#               goes in database_admin_password
# Written (0600): mcp_database_url (user mcp_reader), backup_database_url (backup_operator),
# restore_database_url (ADMIN_USER, database postgres), database_ca.crt, and an empty database_admin_password if there is none.
# usage: ops/external.sh URL CA [ADMIN_USER]
#        ops/external.sh --off
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ops/secrets.sh
source "$OPS_ROOT/ops/secrets.sh"

EXTERNAL_USAGE="usage: make external URL=postgresql://HOST[:PORT]/DATABASE CA=<ca.crt>|system [ADMIN_USER=postgres]"
EXTERNAL_URLS=(mcp_database_url backup_database_url restore_database_url)

# usage: external_check_url URL
# Refuses what the stack fills in itself (users, passwords, sslrootcert) and what it cannot use.
external_check_url() {
	local url="$1" authority rest
	[[ -n "$url" ]] || ops_usage "no URL given" "$EXTERNAL_USAGE"
	[[ "$url" =~ ^postgres(ql)?:// ]] ||
		ops_usage "URL must be a libpq URI (postgresql://HOST/DATABASE)" "$EXTERNAL_USAGE"
	rest="${url#*://}"
	authority="${rest%%/*}"
	if [[ "$authority" == *@* ]]; then
		ops_usage "URL holds a user or password; leave both out" \
			"the stack connects as mcp_reader and backup_operator (make reader-role creates them), each with the" \
			"password in its own secret file: a password in a URL would end up in logs and process lists" "$EXTERNAL_USAGE"
	fi
	[[ -n "$authority" ]] || ops_usage "URL names no host" "$EXTERNAL_USAGE"
	[[ "$rest" == */?* && "${rest#*/}" != \?* ]] || ops_usage "URL names no database (postgresql://HOST/DATABASE)" "$EXTERNAL_USAGE"
	if [[ "$url" =~ [?\&]sslrootcert= ]]; then
		ops_usage "URL sets sslrootcert; give the CA as CA=<file>|system instead" \
			"the file is copied beside the secrets and mounted into the containers, where a host path would not exist" \
			"$EXTERNAL_USAGE"
	fi
	if [[ "$url" =~ [?\&](user|password|passfile)= ]]; then
		ops_usage "URL sets ${BASH_REMATCH[1]}; leave it out (see above)" "$EXTERNAL_USAGE"
	fi
}

# usage: external_url USER URL SSLROOTCERT  -> URL with USER and TLS: postgresql://USER@HOST/DB?...&sslrootcert=...
external_url() {
	local user="$1" url="$2" sslrootcert="$3" scheme rest params=""
	scheme="${url%%://*}"
	rest="${url#*://}"
	[[ "$url" =~ [?\&]sslmode= ]] || params+="sslmode=verify-full&"
	params+="sslrootcert=$sslrootcert"
	if [[ "$rest" == *\?* ]]; then
		printf '%s://%s@%s&%s' "$scheme" "$user" "$rest" "$params"
	else
		printf '%s://%s@%s?%s' "$scheme" "$user" "$rest" "$params"
	fi
}

# usage: external_database URL DATABASE  -> URL with its database replaced by DATABASE
external_database() {
	local url="$1" scheme rest authority query=""
	scheme="${url%%://*}"
	rest="${url#*://}"
	authority="${rest%%/*}"
	if [[ "$rest" == *\?* ]]; then
		query="?${rest#*\?}"
	fi
	printf '%s://%s/%s%s' "$scheme" "$authority" "$2" "$query"
}

# usage: external_write NAME CONTENT
external_write() {
	local path
	path="$(ops_secrets_dir)/$1"
	(
		umask 077
		if [[ -n "$2" ]]; then
			printf '%s\n' "$2" >"$path.tmp"
		else
			: >"$path.tmp" # an empty file (no newline): nothing set
		fi
	)
	mv "$path.tmp" "$path"
	ops_note "wrote $path"
}

external_on() {
	local url="${1:-}" ca="${2:-}" admin="${3:-postgres}" dir sslrootcert
	external_check_url "$url"
	[[ -n "$ca" ]] || ops_usage "no CA given: the stack verifies the server's certificate (sslmode=verify-full)" \
		"CA=<file>: the CA certificate that signed your server's certificate (PEM)" \
		"CA=system: your server's certificate is signed by a public CA" "$EXTERNAL_USAGE"
	[[ "$admin" =~ ^[A-Za-z_][A-Za-z0-9_$]*$ ]] || ops_usage "ADMIN_USER '$admin' is not a role name" "$EXTERNAL_USAGE"
	dir="$(ops_secrets_dir)"
	mkdir -p "$dir"
	if [[ "$ca" == system ]]; then
		sslrootcert=system
		external_write database_ca.crt ""
	else
		[[ -r "$ca" ]] || ops_die "unable to read CA=$ca" "hint: give the CA certificate file (PEM) that signed your server's certificate"
		openssl x509 -noout -in "$ca" 2>/dev/null ||
			ops_die "CA=$ca is not a PEM certificate" "hint: give the CA's certificate (-----BEGIN CERTIFICATE-----), not a key or a server certificate chain in another format"
		sslrootcert=/run/secrets/database_ca
		external_write database_ca.crt "$(<"$ca")"
	fi
	external_write mcp_database_url "$(external_url mcp_reader "$url" "$sslrootcert")"
	external_write backup_database_url "$(external_url backup_operator "$url" "$sslrootcert")"
	# restore connects to the maintenance database postgres: it creates, renames and (FORCE=1) drops the others
	external_write restore_database_url "$(external_url "$admin" "$(external_database "$url" postgres)" "$sslrootcert")"
	if [[ ! -s "$dir/database_admin_password" ]]; then
		external_write database_admin_password ""
	fi
	SECRETS_DIR="$dir" secrets_fix_owner
	cat >&2 <<-EOM
		==> external mode: the stack will serve $(ops_external_target), not its own postgres
		    1. once: make reader-role ADMIN_URL=<an admin's URL>  (creates mcp_reader and backup_operator there,
		       with the passwords in $dir)
		    2. make up  (starts mcp and backup only)
		    for make restore: write $admin's password into $dir/database_admin_password
		    back to the bundled postgres: make bundled && make up
	EOM
}

external_off() {
	local dir name
	dir="$(ops_secrets_dir)"
	for name in "${EXTERNAL_URLS[@]}" database_ca.crt; do
		if [[ -e "$dir/$name" ]]; then
			rm -f "$dir/$name"
			ops_note "removed $dir/$name"
		fi
	done
	ops_note "bundled mode: the next make up starts the stack's own postgres ($dir/database_admin_password is kept)"
}

external_main() {
	if [[ "${1:-}" == --off ]]; then
		external_off
	else
		external_on "$@"
	fi
}

external_main "$@"
