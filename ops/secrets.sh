#!/usr/bin/env bash
# Generate the stack's secrets on first use: strong random values in compose/secrets/, mode 0600, owned
# by the uid the services run as (999) so their containers can read them with every capability
# dropped. Existing files are never overwritten (rotation: runbooks/rotate-secrets.md).
#   postgres_password     superuser          app_owner_password   application schema owner
#   mcp_reader_password   MCP server's role  backup_password      backup operator
#   replicator_password   streaming replication only (hot standbys)
#   mcp_api_keys          `name:key` lines the MCP server accepts as bearer tokens
# and the TLS files of the postgres service (openssl; EC P-256, SHA-256):
#   ca.crt, ca.key        the stack's own CA (10 years): clients verify the server with ca.crt (sslmode=verify-full);
#                         ca.key never leaves this directory (it signs the next server certificate)
#   server.crt, server.key  PostgreSQL's certificate (1 year) for postgres, postgres-standby, pgbouncer, localhost
#                         and 127.0.0.1, and its key
# Every file is made once; `make rotate-tls` (ops/rotate-tls.sh) issues the next server certificate.
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

# What ops/rotate-tls.sh shares. The names the server certificate is valid for: the Compose service names
# (mcp and backup connect to postgres; with PROFILE=scale, to the hot standby and PgBouncer, which serve the
# same certificate), and the host side of the published port.
TLS_SERVER_NAMES="DNS:postgres,DNS:postgres-standby,DNS:pgbouncer,DNS:localhost,IP:127.0.0.1"
TLS_CA_DAYS=3650
TLS_SERVER_DAYS=365
TLS_FILES=(ca.crt ca.key server.crt server.key)

# usage: tls_require_openssl
tls_require_openssl() {
	command -v openssl >/dev/null 2>&1 ||
		ops_install_packages "install OpenSSL (the openssl command), then run this again" openssl
}

# usage: tls_config PATH
# The openssl configuration both commands read: no prompt, and the extensions of each certificate.
tls_config() {
	cat >"$1" <<-EOF
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		CN = unused
		[ca]
		basicConstraints = critical, CA:TRUE, pathlen:0
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
		[server]
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = ${TLS_SERVER_NAMES//,/, }
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid:always
	EOF
}

# usage: tls_new_ca DIR
# A new CA in DIR/ca.crt and DIR/ca.key.
tls_new_ca() {
	local dir="$1"
	tls_config "$dir/openssl.cnf"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days "$TLS_CA_DAYS" \
		-config "$dir/openssl.cnf" -extensions ca -subj "/CN=pgstack CA $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" 2>"$dir/openssl.log" ||
		ops_die "unable to create the CA: $(cat "$dir/openssl.log")"
}

# usage: tls_new_server DIR CA-CRT CA-KEY
# A new server key and certificate, signed by the CA, in DIR/server.key and DIR/server.crt; checked
# against the CA and the key before anything uses them.
tls_new_server() {
	local dir="$1" ca_crt="$2" ca_key="$3"
	tls_config "$dir/openssl.cnf"
	{
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -config "$dir/openssl.cnf" \
			-subj /CN=postgres -keyout "$dir/server.key" -out "$dir/server.csr" &&
			openssl x509 -req -in "$dir/server.csr" -CA "$ca_crt" -CAkey "$ca_key" -sha256 \
				-set_serial "0x$(openssl rand -hex 16)" -days "$TLS_SERVER_DAYS" \
				-extfile "$dir/openssl.cnf" -extensions server -out "$dir/server.crt" &&
			openssl verify -CAfile "$ca_crt" -purpose sslserver "$dir/server.crt" >/dev/null &&
			[[ "$(openssl x509 -in "$dir/server.crt" -noout -pubkey)" == "$(openssl pkey -in "$dir/server.key" -pubout)" ]]
	} 2>"$dir/openssl.log" || ops_die "unable to issue the server certificate: $(cat "$dir/openssl.log")" \
		"hint: check $ca_crt and $ca_key (a pair made by ops/secrets.sh)"
	rm -f "$dir/server.csr"
}

# usage: tls_scratch  -> a new private directory in SECRETS_DIR (removed by the caller)
# In the secrets directory, so that the keys never touch another file system.
tls_scratch() {
	(
		umask 077
		mktemp -d "$SECRETS_DIR/.tls.XXXXXX"
	)
}

# usage: secrets_tls
# The CA and the server certificate, each pair made once: an existing CA issues a missing server
# certificate; a CA without its key cannot, and stops with what to do.
secrets_tls() {
	local missing=0 name
	for name in "${TLS_FILES[@]}"; do
		[[ -s "$SECRETS_DIR/$name" ]] || missing=1
	done
	((missing)) || return 0
	tls_require_openssl
	local scratch
	scratch="$(tls_scratch)"
	# shellcheck disable=SC2064 # expand now: the trap must remove this directory
	trap "rm -rf '$scratch'" EXIT
	if [[ ! -s "$SECRETS_DIR/ca.crt" && ! -s "$SECRETS_DIR/ca.key" ]]; then
		tls_new_ca "$scratch"
		mv "$scratch/ca.key" "$SECRETS_DIR/ca.key"
		mv "$scratch/ca.crt" "$SECRETS_DIR/ca.crt"
		ops_note "generated $SECRETS_DIR/ca.crt and ca.key (the stack's CA, valid $TLS_CA_DAYS days)"
	elif [[ ! -s "$SECRETS_DIR/ca.crt" || ! -s "$SECRETS_DIR/ca.key" ]]; then
		ops_die "$SECRETS_DIR holds only one of ca.crt and ca.key" \
			"hint: put the missing one back, or remove ca.crt, ca.key, server.crt and server.key for a new CA (clients must then trust the new ca.crt)"
	fi
	if [[ ! -s "$SECRETS_DIR/server.crt" || ! -s "$SECRETS_DIR/server.key" ]]; then
		[[ ! -s "$SECRETS_DIR/server.crt" && ! -s "$SECRETS_DIR/server.key" ]] ||
			ops_die "$SECRETS_DIR holds only one of server.crt and server.key" \
				"hint: remove the other one: ops/secrets.sh then issues a new pair from the CA"
		tls_new_server "$scratch" "$SECRETS_DIR/ca.crt" "$SECRETS_DIR/ca.key"
		mv "$scratch/server.key" "$SECRETS_DIR/server.key"
		mv "$scratch/server.crt" "$SECRETS_DIR/server.crt"
		ops_note "generated $SECRETS_DIR/server.crt and server.key (for $TLS_SERVER_NAMES, valid $TLS_SERVER_DAYS days)"
	fi
	rm -rf "$scratch"
	trap - EXIT
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
		elif [[ "$(basename "$path")" == ca.key ]]; then
			chmod 0600 "$path" # no container reads it
		elif [[ "$(basename "$path")" == server.key && "$(stat -c %u "$path")" != "$OPS_SERVICE_UID" ]]; then
			ops_warn "$path must belong to uid $OPS_SERVICE_UID with mode 0600, or PostgreSQL refuses to start (run make up as root once)"
		elif [[ "$(stat -c %u "$path")" != "$OPS_SERVICE_UID" ]]; then
			chmod 0644 "$path"
			ops_warn "$path is mode 0644 so that uid $OPS_SERVICE_UID in the containers can read it (run make up as root once for 0600)"
		fi
	done
}

# usage: secrets_mcp_tls_names  -> the names the MCP front door's certificate must hold (openssl subjectAltName)
# localhost and 127.0.0.1 (the published loopback port), and the host of MCP_PUBLIC_URL.
secrets_mcp_tls_names() {
	local url host
	url="$(ops_setting MCP_PUBLIC_URL '')"
	host="${url#*://}"
	host="${host%%/*}"
	host="${host%:*}"
	host="${host#[}"
	host="${host%]}"
	local names="DNS:localhost,IP:127.0.0.1"
	if [[ -n "$host" && "$host" != localhost && "$host" != 127.0.0.1 ]]; then
		if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then
			names+=",IP:$host"
		else
			names+=",DNS:$host"
		fi
	fi
	printf '%s' "$names"
}

# usage: secrets_mcp_tls
# The TLS front door's certificate (PROFILE=tls): mcp_tls.crt and mcp_tls.key. An operator's own pair is kept
# as it is (it must cover MCP_PUBLIC_URL's host); without one, the stack's CA issues one for the names above,
# again when MCP_PUBLIC_URL names a host the one it issued before does not cover.
secrets_mcp_tls() {
	local crt="$SECRETS_DIR/mcp_tls.crt" key="$SECRETS_DIR/mcp_tls.key" names host
	tls_require_openssl
	names="$(secrets_mcp_tls_names)"
	host="${names##*:}"
	if [[ -s "$crt" && -s "$key" ]]; then
		openssl x509 -in "$crt" -noout -checkhost "$host" 2>/dev/null | grep -q 'does match' ||
			openssl x509 -in "$crt" -noout -checkip "$host" 2>/dev/null | grep -q 'does match' && return 0
		if ! openssl verify -CAfile "$SECRETS_DIR/ca.crt" "$crt" >/dev/null 2>&1; then
			ops_die "$crt (your certificate) is not valid for $host, the host of MCP_PUBLIC_URL" \
				"hint: give it that name, or set MCP_PUBLIC_URL to a name it holds: $(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | tail -n 1 | tr -d ' ')"
		fi
		ops_note "$crt does not cover $host (MCP_PUBLIC_URL): issuing a new one from the stack's CA"
	elif [[ -s "$crt" || -s "$key" ]]; then
		ops_die "$SECRETS_DIR holds only one of mcp_tls.crt and mcp_tls.key" \
			"hint: put your certificate and its key there together, or remove the one left for a certificate from the stack's CA"
	fi
	local scratch
	scratch="$(tls_scratch)"
	# shellcheck disable=SC2064 # expand now: the trap must remove this directory
	trap "rm -rf '$scratch'" RETURN
	TLS_SERVER_NAMES="$names" tls_new_server "$scratch" "$SECRETS_DIR/ca.crt" "$SECRETS_DIR/ca.key"
	mv "$scratch/server.key" "$key"
	mv "$scratch/server.crt" "$crt"
	ops_note "generated $crt and mcp_tls.key (for $names, valid $TLS_SERVER_DAYS days; clients trust $SECRETS_DIR/ca.crt)"
}

secrets_main() {
	ops_step "checking secrets in $SECRETS_DIR"
	mkdir -p "$SECRETS_DIR"
	chmod 0700 "$SECRETS_DIR" 2>/dev/null || : # ignore: the checkout may belong to another user
	local role
	for role in postgres app_owner mcp_reader backup replicator; do
		secrets_write "${role}_password" "$(secrets_random 32)"
	done
	secrets_write mcp_api_keys "$(printf '# name:key, one per line; the name goes to the audit log\ndefault:%s' "$(secrets_random 32)")"
	secrets_tls
	secrets_mcp_tls
	secrets_fix_owner
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	secrets_main "$@"
fi
