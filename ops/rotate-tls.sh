#!/usr/bin/env bash
# Give postgres a new TLS certificate with no downtime and no client ever seeing one it cannot verify:
#   make rotate-tls        a new server key and certificate from the stack's CA (yearly, or after a leak of
#                          server.key)
#   make rotate-tls CA=1   a new CA as well (after a leak of ca.key, or before the CA expires), in three steps:
#                          ca.crt first holds both CAs, then postgres serves a certificate of the new CA,
#                          then ca.crt holds the new CA only
# Each file is rewritten in place (same inode, owner and mode): Compose bind-mounts secret files into the
# running containers by inode. PostgreSQL reads its certificate again on a reload (pg_reload_conf()), and
# libpq reads sslrootcert on every new connection, so no service restarts; open sessions keep the TLS
# session they made. The served certificate is checked on 127.0.0.1:PG_PORT afterwards; when it is not the
# new one, the old files come back and postgres is reloaded again.
# usage: ops/rotate-tls.sh [--ca]
#        make rotate-tls [CA=1]
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ops/secrets.sh
source "$OPS_ROOT/ops/secrets.sh"

ROTATE_TLS_USAGE="usage: make rotate-tls [CA=1]"
ROTATE_TLS_HINT="hint: the server log says why (make logs SERVICE=postgres)"

# usage: rotate_tls_copy_in_place FROM TO
# TO gets FROM's content, keeping TO's inode, owner and mode.
rotate_tls_copy_in_place() {
	cat "$1" >"$2"
}

# usage: rotate_tls_reload
rotate_tls_reload() {
	"$OPS_ROOT/ops/psql.sh" postgres -qtAc 'SELECT pg_reload_conf()' >/dev/null ||
		ops_die "unable to reload postgres" "hint: check that the stack is up (make ps), then run this again"
}

# usage: rotate_tls_served_serial  -> the serial of the certificate postgres serves on 127.0.0.1:PG_PORT,
# verified against ca.crt for the name localhost (empty when the handshake or the verification fails)
rotate_tls_served_serial() {
	openssl s_client -starttls postgres -connect "127.0.0.1:$(ops_setting PG_PORT 5432)" \
		-CAfile "$SECRETS_DIR/ca.crt" -verify_hostname localhost -verify_return_error </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null || :
}

# usage: rotate_tls_serve DIR
# postgres serves DIR/server.crt and DIR/server.key; or, returning non-zero, the old pair again.
rotate_tls_serve() {
	local dir="$1" expected served
	expected="$(openssl x509 -in "$dir/server.crt" -noout -serial)"
	cp -p "$SECRETS_DIR/server.crt" "$dir/server.crt.previous"
	cp -p "$SECRETS_DIR/server.key" "$dir/server.key.previous"
	rotate_tls_copy_in_place "$dir/server.key" "$SECRETS_DIR/server.key"
	rotate_tls_copy_in_place "$dir/server.crt" "$SECRETS_DIR/server.crt"
	rotate_tls_reload
	served="$(rotate_tls_served_serial)"
	if [[ "$served" != "$expected" ]]; then
		rotate_tls_copy_in_place "$dir/server.key.previous" "$SECRETS_DIR/server.key"
		rotate_tls_copy_in_place "$dir/server.crt.previous" "$SECRETS_DIR/server.crt"
		rotate_tls_reload
		ops_warn "postgres does not serve the new certificate (${served:-no verified handshake}, expected $expected)"
		return 1
	fi
	ops_note "postgres serves the new certificate ($served, valid $TLS_SERVER_DAYS days)"
}

rotate_tls_main() {
	local new_ca=0
	if ops_external; then
		ops_die "external mode: your server's certificate is yours to rotate; the stack only trusts its CA" \
			"hint: after a new CA, run make external again with CA=<the new ca.crt> (and the same URL), then make up"
	fi
	case "${1:-}" in
		"") ;;
		--ca) new_ca=1 ;;
		*) ops_usage "unknown argument '$1'" "$ROTATE_TLS_USAGE" ;;
	esac
	local name
	for name in "${TLS_FILES[@]}"; do
		[[ -s "$SECRETS_DIR/$name" ]] || ops_die "no $SECRETS_DIR/$name" "hint: make up creates the TLS files (ops/secrets.sh)"
	done
	tls_require_openssl
	local scratch
	scratch="$(tls_scratch)"
	# shellcheck disable=SC2064 # expand now: the trap must remove this directory
	trap "rm -rf '$scratch'" EXIT
	if ((new_ca)); then
		ops_step "creating a new CA; clients trust the old and the new one meanwhile"
		tls_new_ca "$scratch"
		cp -p "$SECRETS_DIR/ca.crt" "$scratch/ca.crt.previous"
		cat "$scratch/ca.crt.previous" "$scratch/ca.crt" >"$SECRETS_DIR/ca.crt"
		ops_step "issuing a server certificate of the new CA"
		tls_new_server "$scratch" "$scratch/ca.crt" "$scratch/ca.key"
		if ! rotate_tls_serve "$scratch"; then
			rotate_tls_copy_in_place "$scratch/ca.crt.previous" "$SECRETS_DIR/ca.crt"
			ops_die "the old CA and certificate are back: nothing was changed" "$ROTATE_TLS_HINT"
		fi
		rotate_tls_copy_in_place "$scratch/ca.key" "$SECRETS_DIR/ca.key"
		rotate_tls_copy_in_place "$scratch/ca.crt" "$SECRETS_DIR/ca.crt"
		ops_note "$SECRETS_DIR/ca.crt holds the new CA only: give it to every client outside the stack (psql, drivers)"
	else
		ops_step "issuing a new server certificate from $SECRETS_DIR/ca.crt"
		tls_new_server "$scratch" "$SECRETS_DIR/ca.crt" "$SECRETS_DIR/ca.key"
		rotate_tls_serve "$scratch" || ops_die "the old certificate is back: nothing was changed" "$ROTATE_TLS_HINT"
	fi
}

rotate_tls_main "$@"
