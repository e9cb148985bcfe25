#!/usr/bin/env bash
# Remove the stack's containers, networks AND volumes (the database and every backup). Asks first;
# FORCE=1 skips the question (scripts, CI). Secrets and built images stay.
# usage: [FORCE=1] ops/clean.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

clean_main() {
	local project="${COMPOSE_PROJECT_NAME:-pgstack}"
	if [[ "${FORCE:-}" != 1 ]]; then
		if [[ ! -t 0 ]]; then
			ops_die "refusing to delete the volumes of project $project without confirmation" \
				"hint: run make clean FORCE=1 to delete the database and all backups"
		fi
		printf 'This deletes the database and every backup of project %s (volumes %s_pgdata, %s_backups, and %s_pgdata-standby if PROFILE=scale ran).\n' "$project" "$project" "$project" "$project" >&2
		local answer
		read -r -p 'Type the project name to confirm: ' answer
		[[ "$answer" == "$project" ]] || ops_die "not confirmed: nothing was deleted"
	fi
	ops_step "removing project $project with its volumes"
	# the on-demand services too (restore, restore-drill), so no container keeps a volume busy, and every
	# PROFILE's files (the standby's volume is only in compose/scale.yaml), whichever profile ran last
	local profiles=""
	if ! ops_external; then
		profiles="$(IFS=,; printf '%s' "${OPS_PROFILES[*]}")"
	fi
	PROFILE="$profiles" COMPOSE_PROFILES=restore,drill "$OPS_ROOT/ops/compose.sh" down --volumes --remove-orphans
}

clean_main "$@"
