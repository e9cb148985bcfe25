#!/usr/bin/env bash
# Wait until every named service of the project is healthy; fail early, with its logs, when one turns
# unhealthy or exits. While it waits it shows, every WAIT_REPORT_SECONDS, each service that is not
# healthy yet: its state and the last line of its log (what it is busy with), and when each turned healthy.
#   WAIT_TIMEOUT         seconds to wait in all (default 900: a first start at DEMO_ORDERS=1000000 is slow)
#   WAIT_REPORT_SECONDS  seconds between two status lines of a service (default 5)
# usage: ops/wait-healthy.sh SERVICE...
#    ie: ops/wait-healthy.sh postgres mcp backup
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# once for every ops/compose.sh this wait runs (each would otherwise read git and the base image again)
ops_load_image_choice

# usage: wait_containers SERVICE  -> the ids of the service's containers (one per replica), one per line, or
# nothing when it has none yet. All of them: a scaled service is healthy when every replica is. A failed
# listing (a container removed while Compose inspects it) is "none yet": the next round lists again.
wait_containers() {
	local ids
	ids="$("$OPS_ROOT/ops/compose.sh" ps --all -q "$1" 2>/dev/null)" || ids=""
	printf '%s' "$ids"
}

# usage: wait_state CONTAINER  -> "<status>/<health>" of the container, ie: running/starting
wait_state() {
	docker inspect --format '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null ||
		printf 'missing' # removed since wait_containers listed it
}

# usage: wait_last_log CONTAINER  -> the last line the container logged (stdout or stderr)
wait_last_log() {
	docker logs --tail 1 "$1" 2>&1 | tail -n 1
}

# usage: wait_fail SERVICE STATE
wait_fail() {
	printf '%s: error: service %s is %s\n' "$(basename "$0")" "$1" "$2" >&2
	printf '    its last log lines:\n' >&2
	"$OPS_ROOT/ops/compose.sh" logs --no-color --tail 30 "$1" >&2 || : # ignore: the logs are only a diagnosis
	exit 1
}

wait_main() {
	local timeout="${WAIT_TIMEOUT:-900}" every="${WAIT_REPORT_SECONDS:-5}"
	local started="$EPOCHSECONDS" reported="$EPOCHSECONDS" report service replica id state
	local -a pending=("$@") waiting
	ops_step "waiting for $* to be healthy (at most ${timeout}s)"
	while ((${#pending[@]})); do
		report=0
		if ((EPOCHSECONDS - reported >= every)); then
			report=1
			reported="$EPOCHSECONDS"
		fi
		waiting=()
		for service in "${pending[@]}"; do
			# the service's state is its first replica that is not healthy (or healthy when none is)
			id=""
			state=missing
			for replica in $(wait_containers "$service"); do
				id="$replica"
				state="$(wait_state "$replica")"
				if [[ "$state" != running/healthy ]]; then
					break
				fi
			done
			case "$state" in
				running/healthy)
					ops_progress $((EPOCHSECONDS - started)) "$service: healthy"
					continue
					;;
				*/unhealthy | exited/* | dead/*) wait_fail "$service" "$state" ;;
			esac
			if ((EPOCHSECONDS - started >= timeout)); then
				wait_fail "$service" "still $state after ${timeout}s"
			fi
			waiting+=("$service")
			if ((report)); then
				ops_progress $((EPOCHSECONDS - started)) \
					"$service: not healthy yet ($state); last log line: ${id:+$(wait_last_log "$id")}"
			fi
		done
		pending=("${waiting[@]}")
		if ((${#pending[@]})); then
			sleep 1
		fi
	done
	ops_note "healthy after $(ops_duration $((EPOCHSECONDS - started))): $*"
}

wait_main "$@"
