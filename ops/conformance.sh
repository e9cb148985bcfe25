#!/usr/bin/env bash
# Run the meaningful scenarios of the MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# ops/node.sh) against our server.
#
# usage: ops/conformance.sh            start a native PostgreSQL and `python -m pgmcp` on free loopback ports
#        ops/conformance.sh URL        test a running server (e.g. http://127.0.0.1:8080/mcp); its API key in
#                                      PGMCP_API_KEY
#
# The suite cannot send an Authorization header, so it talks to a loopback proxy that adds the key and passes
# everything else (the Host and Origin headers included) through unchanged (devtools/mcp_server.py).
# Most of the suite's scenarios expect the reference test server's own tool, resource and prompt names; the ones
# that mean something for any server are listed in CONFORMANCE_SCENARIOS. Exit status: 0 when all of them pass.
#
# Reads:
#   PGMCP_API_KEY            key for URL (only with URL)
#   CONFORMANCE_SCENARIOS  space-separated scenario names (default below)
#   CONFORMANCE_REPORT_DIR where the suite writes its checks (default: <repo>/reports/conformance)
#   PYTHON                 interpreter with the dev requirements (default: <repo>/.venv/bin/python)
set -Eeuo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEFAULT_SCENARIOS="server-initialize ping tools-list tools-call-error completion-complete resources-list prompts-list dns-rebinding-protection"
TARGET_START_TIMEOUT_S=120

# usage: conformance_wait_ready READY_FILE PID
# Waits until the target wrote READY_FILE; stops at once if the target process died.
conformance_wait_ready() {
	local ready_file="$1" pid="$2"
	local deadline=$((SECONDS + TARGET_START_TIMEOUT_S))
	while [[ ! -s "$ready_file" ]]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			ops_die "the conformance target exited before it was ready" "hint: read $CONFORMANCE_WORK/target.log"
		fi
		if ((SECONDS >= deadline)); then
			ops_die "the conformance target was not ready after ${TARGET_START_TIMEOUT_S} s" \
				"hint: read $CONFORMANCE_WORK/target.log"
		fi
		sleep 0.2 # poll interval of this wait, bounded by the deadline above
	done
}

# usage: conformance_stop_target
# Stops the target started by this script (by its PID only), then removes the work directory.
conformance_stop_target() {
	if [[ -n "${CONFORMANCE_TARGET_PID:-}" ]] && kill -0 "$CONFORMANCE_TARGET_PID" 2>/dev/null; then
		kill -TERM "$CONFORMANCE_TARGET_PID"
		wait "$CONFORMANCE_TARGET_PID" || : # it exits non-zero on SIGTERM; we only need it gone
	fi
	if [[ -n "${CONFORMANCE_WORK:-}" ]]; then
		rm -rf "$CONFORMANCE_WORK"
	fi
}

# usage: conformance_run_scenario NODE_BIN SUITE URL SCENARIO REPORT_DIR
# Runs one scenario; returns its exit status (0 = passed).
conformance_run_scenario() {
	local node="$1" suite="$2" url="$3" scenario="$4" report_dir="$5"
	local -a command=("$node" "$suite" server --url "$url" --scenario "$scenario" -o "$report_dir")
	HOME="$CONFORMANCE_WORK/home" "${command[@]}" >"$CONFORMANCE_WORK/$scenario.log" 2>&1
}

conformance_main() {
	local url="${1:-}"
	local python="${PYTHON:-$OPS_ROOT/.venv/bin/python}"
	local report_dir="${CONFORMANCE_REPORT_DIR:-$OPS_ROOT/reports/conformance}"
	local scenarios="${CONFORMANCE_SCENARIOS:-$DEFAULT_SCENARIOS}"

	local node_dir
	node_dir="$("$OPS_ROOT/ops/node.sh")" || ops_die "unable to install Node 22 and the conformance suite"
	local node="$node_dir/bin/node"
	local suite="$OPS_STATE_DIR/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
	[[ -f "$suite" ]] || ops_die "the conformance suite is missing at $suite" "hint: run ops/node.sh"

	CONFORMANCE_WORK="$(mktemp -d)"
	mkdir -p "$CONFORMANCE_WORK/home" "$report_dir"
	trap conformance_stop_target EXIT

	local -a target=("$python" -m devtools.mcp_server conformance-target --ready-file "$CONFORMANCE_WORK/ready.json")
	if [[ -n "$url" ]]; then
		[[ -n "${PGMCP_API_KEY:-}" ]] || ops_die "testing $url needs its API key in PGMCP_API_KEY"
		target+=(--url "$url")
	fi
	ops_step "starting the conformance target${url:+ in front of $url}"
	(cd "$OPS_ROOT" && exec "${target[@]}") >"$CONFORMANCE_WORK/target.log" 2>&1 &
	CONFORMANCE_TARGET_PID=$!
	conformance_wait_ready "$CONFORMANCE_WORK/ready.json" "$CONFORMANCE_TARGET_PID"
	local proxy_url
	proxy_url="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["url"])' "$CONFORMANCE_WORK/ready.json")"

	local scenario failed=0
	for scenario in $scenarios; do
		if conformance_run_scenario "$node" "$suite" "$proxy_url" "$scenario" "$report_dir"; then
			printf 'PASS %s\n' "$scenario"
		else
			printf 'FAIL %s\n' "$scenario"
			sed 's/^/    /' "$CONFORMANCE_WORK/$scenario.log" >&2
			failed=$((failed + 1))
		fi
	done
	if ((failed > 0)); then
		ops_die "$failed conformance scenario(s) failed" "hint: the suite's checks are in $report_dir"
	fi
	printf 'all %d conformance scenarios passed (checks in %s)\n' "$(wc -w <<<"$scenarios")" "$report_dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	conformance_main "$@"
fi
