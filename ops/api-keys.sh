#!/usr/bin/env bash
# Manage the MCP server's API keys in the stack's key file (compose/secrets/mcp_api_keys), which the server
# reads again by itself when it changes: no restart, no call in flight lost (services/mcp/src/pgmcp/keys.py).
# usage: ops/api-keys.sh create NAME    (SCOPES=query,explain|pg:read SCHEMAS=a,b MAX_ROWS=N EXPIRES=2027-01-31|90d)
#        ops/api-keys.sh list           name, state, tools, row limit, expiry, creation, last use (the latest
#                                       over the running mcp replicas; PGMCP_METRICS_URL: a server outside the stack)
#        ops/api-keys.sh revoke NAME
#        make api-key NAME=... | make api-keys | make api-key-revoke NAME=...
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECRETS_DIR="${SECRETS_DIR:-$OPS_ROOT/compose/secrets}"
KEYS_FILE="$SECRETS_DIR/mcp_api_keys"

action="${1:-}"
name="${2:-}"
[[ -x "$OPS_VENV/bin/python" ]] || ops_die "no virtualenv at $OPS_VENV" "hint: make venv"
[[ -e "$KEYS_FILE" ]] || ops_die "no key file at $KEYS_FILE" "hint: make up creates it, with a key named default"
[[ -w "$KEYS_FILE" || "$action" == list ]] || ops_die "unable to write $KEYS_FILE" \
	"hint: run as root: the secrets belong to uid $OPS_SERVICE_UID (ops/secrets.sh)"
case "$action" in
create | revoke)
	target="api-key"
	[[ "$action" == create ]] || target="api-key-revoke"
	[[ -n "$name" ]] || ops_die "$action needs the key's name" "hint: make $target NAME=<name>"
	;;
list) ;;
*) ops_die "unknown action '$action'" "hint: create NAME, list, or revoke NAME" ;;
esac
args=(api-key "$action")
[[ -z "$name" ]] || args+=("$name")
args+=(--file "$KEYS_FILE")
if [[ "$action" == create ]]; then
	args+=(--scopes "${SCOPES:-}" --schemas "${SCHEMAS:-}" --max-rows "${MAX_ROWS:-}" --expires "${EXPIRES:-}")
fi
# usage: metrics_of_replicas DIR
# What each running mcp replica serves at /metrics, one file each in DIR, read inside the container (the front
# door does not pass /metrics, and a load balancer would show one replica per request).
metrics_of_replicas() {
	local ids id
	ids="$("$OPS_ROOT/ops/compose.sh" ps -q mcp 2>/dev/null)" || ids=""
	for id in $ids; do
		docker exec "$id" python -c "$METRICS_READER" >"$1/$id.txt" 2>/dev/null || rm -f "$1/$id.txt"
	done
}
METRICS_READER='import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:8080/metrics", timeout=5).read().decode())'

if [[ "$action" == list ]]; then
	if [[ -n "${PGMCP_METRICS_URL:-}" ]]; then # a server outside the stack
		args+=(--metrics "$PGMCP_METRICS_URL")
	else
		scratch="$(mktemp -d)"
		trap 'rm -rf "$scratch"' EXIT
		metrics_of_replicas "$scratch"
		for file in "$scratch"/*.txt; do
			[[ -e "$file" ]] && args+=(--metrics "$file")
		done
	fi
	PYTHONPATH="$OPS_ROOT/services/mcp/src${PYTHONPATH:+:$PYTHONPATH}" "$OPS_VENV/bin/python" -m pgmcp "${args[@]}"
	exit
fi
PYTHONPATH="$OPS_ROOT/services/mcp/src${PYTHONPATH:+:$PYTHONPATH}" exec "$OPS_VENV/bin/python" -m pgmcp "${args[@]}"
