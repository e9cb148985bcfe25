#!/usr/bin/env bash
# `make drill-offsite`: prove an offsite copy restores (the newest, or BACKUP=<id>). Three one-off containers:
# the backup service's (it reaches the target) downloads, decrypts with the age key AGE_KEY names (handed in on
# stdin) and verifies the copy into scratch space on the backups volume; the restore-drill service's (no
# network) drills that set and writes its report into /backups/drills; the scratch space is removed at the end,
# whatever happened. RTO is the drill's own (restore and verify), without the download.
# usage: AGE_KEY=FILE ops/drill-offsite.sh [--set ID|latest|offsite:ID|offsite:latest]
#    ie: AGE_KEY=~/offsite-key.txt ops/drill-offsite.sh --set latest
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DRILL_OFFSITE_SCRATCH="/backups/.offsite-drill"

# usage: drill_offsite_set ARGS...  -> the copy asked for by --set (default latest), without an offsite: prefix
drill_offsite_set() {
	local selector=latest
	while (($#)); do
		if [[ "$1" == --set && $# -ge 2 ]]; then
			selector="${2#offsite:}"
			shift
		fi
		shift
	done
	printf '%s' "${selector:-latest}"
}

# usage: drill_offsite_cleanup  -> removes the scratch space (best effort: a leftover is removed by the next run)
drill_offsite_cleanup() {
	"$OPS_ROOT/ops/compose.sh" run --rm --no-deps -T --entrypoint rm backup -rf -- "$DRILL_OFFSITE_SCRATCH" >/dev/null 2>&1 ||
		ops_note "could not remove $DRILL_OFFSITE_SCRATCH from the backups volume; the next make drill-offsite does"
}

drill_offsite_main() {
	ops_offsite_key_check
	ops_profile offsite || ops_die "offsite copies need PROFILE=offsite (the secret access key and the way out)" \
		"hint: make drill-offsite PROFILE=offsite AGE_KEY=$AGE_KEY, or set PROFILE=offsite in compose/.env"
	local selector output set_id status=0
	selector="$(drill_offsite_set "$@")"
	drill_offsite_cleanup
	trap drill_offsite_cleanup EXIT
	ops_step "fetching offsite copy $selector (decrypted with the key in $AGE_KEY, verified)"
	output="$("$OPS_ROOT/ops/compose.sh" run --rm --no-deps -T backup fetch-offsite --set "$selector" \
		--identity - --into "$DRILL_OFFSITE_SCRATCH" <"$AGE_KEY")" || exit
	printf '%s\n' "$output" | grep -v '^set='
	set_id="$(printf '%s\n' "$output" | sed -n 's/^set=//p' | tail -n 1)"
	[[ -n "$set_id" ]] || ops_die "fetch-offsite printed no set id" "hint: see its output above"
	ops_step "drilling offsite copy $set_id"
	"$OPS_ROOT/ops/compose.sh" run --rm -T -e BACKUP_DIR="$DRILL_OFFSITE_SCRATCH" restore-drill drill --set "$set_id" \
		--report "/backups/drills/$(date -u +%Y%m%dT%H%M%SZ)-offsite-$set_id.json" || status=$?
	exit "$status"
}

drill_offsite_main "$@"
