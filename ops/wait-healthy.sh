#!/usr/bin/env bash
# Wait until every named service of the project is healthy; fail early, with its logs, when one turns
# unhealthy or exits. Works with Compose v1.29, which has no `up --wait`.
#   WAIT_TIMEOUT  seconds to wait in all (default 900: a first start at DEMO_ORDERS=1000000 is slow)
# usage: ops/wait-healthy.sh SERVICE...
#    ie: ops/wait-healthy.sh postgres mcp backup
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# usage: wait_state SERVICE  -> prints "<status>/<health>" of the service's container, or "missing"
wait_state() {
	local id
	id="$("$OPS_ROOT/ops/compose.sh" ps -q "$1" 2>/dev/null | head -n 1)"
	if [[ -z "$id" ]]; then
		printf 'missing'
		return 0
	fi
	docker inspect --format '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id"
}

# usage: wait_fail SERVICE STATE
wait_fail() {
	printf '%s: error: service %s is %s\n' "$(basename "$0")" "$1" "$2" >&2
	printf '    its last log lines:\n' >&2
	"$OPS_ROOT/ops/compose.sh" logs --tail 30 "$1" >&2 || : # ignore: the logs are only a diagnosis
	exit 1
}

wait_main() {
	local timeout="${WAIT_TIMEOUT:-900}"
	local deadline=$((SECONDS + timeout))
	local service state
	ops_step "waiting for $* to be healthy (at most ${timeout}s)"
	for service in "$@"; do
		while true; do
			state="$(wait_state "$service")"
			case "$state" in
				running/healthy)
					ops_note "$service: healthy"
					break
					;;
				*/unhealthy | exited/* | dead/*) wait_fail "$service" "$state" ;;
			esac
			if ((SECONDS >= deadline)); then
				wait_fail "$service" "still $state after ${timeout}s"
			fi
			sleep 1
		done
	done
}

wait_main "$@"
