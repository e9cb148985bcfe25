#!/usr/bin/env bash
# `make restore-drill`: run the restore drill (the `restore-drill` service, python -m pgbackup drill ARGS) with a
# disk-backed scratch volume of its own at /drill-scratch, for a set too large for the drill's memory budget
# (BACKUP_DRILL_MEMORY_BUDGET; the drill itself chooses memory or disk and its report says which). The volume is
# created for this run and removed afterwards, whether the drill passed, failed or was interrupted.
#   COMPOSE_PROJECT_NAME  the stack's project (default pgstack): the volume is <project>_drill-scratch-<start>-<pid>
# usage: ops/restore-drill.sh DRILL-ARGS...
#    ie: ops/restore-drill.sh --set latest
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DRILL_SCRATCH_MOUNT=/drill-scratch
DRILL_SCRATCH_LABEL=com.pgstack.drill-scratch

# usage: drill_scratch_name PROJECT  -> a new volume name, ie: pgstack_drill-scratch-20261207T041500Z-4242
drill_scratch_name() {
	printf '%s_drill-scratch-%s-%s\n' "$1" "$(date -u +%Y%m%dT%H%M%SZ)" "$$"
}

# usage: drill_scratch_remove VOLUME
drill_scratch_remove() {
	if ! docker volume rm "$1" >/dev/null 2>&1; then
		ops_warn "unable to remove the drill's scratch volume $1: remove it with docker volume rm $1"
	fi
}

drill_main() {
	local project volume status=0
	project="${COMPOSE_PROJECT_NAME:-pgstack}"
	volume="$(drill_scratch_name "$project")"
	docker volume create --label "$DRILL_SCRATCH_LABEL=$project" "$volume" >/dev/null ||
		ops_die "unable to create the drill's scratch volume $volume" "hint: docker info says whether Docker runs"
	# shellcheck disable=SC2064 # the name is fixed now, on purpose
	trap "drill_scratch_remove '$volume'" EXIT
	# a signal ends the script through exit, so the EXIT trap removes the volume (after compose run has stopped)
	trap 'exit 130' INT
	trap 'exit 143' TERM
	"$OPS_ROOT/ops/compose.sh" run --rm -T --volume "$volume:$DRILL_SCRATCH_MOUNT" restore-drill drill "$@" ||
		status=$?
	return "$status"
}

drill_main "$@"
