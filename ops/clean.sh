#!/usr/bin/env bash
# Remove the stack's containers, networks AND volumes: the database, the standby's copy. The backups volume
# stays unless BACKUPS=1 (then every backup goes too), so that a clean start can still restore. Asks first;
# FORCE=1 skips the question (scripts, CI). Secrets and built images stay.
# usage: [FORCE=1] [BACKUPS=1] ops/clean.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# usage: clean_drill_scratch PROJECT
# Scratch volumes an interrupted `make restore-drill` left behind (ops/restore-drill.sh removes its own).
clean_drill_scratch() {
	local volume
	while IFS= read -r volume; do
		[[ -n "$volume" ]] || continue
		docker volume rm "$volume" >/dev/null
		ops_note "removed the drill's scratch volume $volume"
	done < <(docker volume ls -q --filter "label=com.pgstack.drill-scratch=$1")
}

clean_main() {
	local project="${COMPOSE_PROJECT_NAME:-pgstack}"
	if [[ "${FORCE:-}" != 1 ]]; then
		if [[ ! -t 0 ]]; then
			ops_die "refusing to delete the volumes of project $project without confirmation" \
				"hint: run make clean FORCE=1 to delete the database (the backups stay; BACKUPS=1 deletes them too)"
		fi
		if [[ "${BACKUPS:-}" == 1 ]]; then
			printf 'This deletes the database and EVERY BACKUP of project %s (volumes %s_pgdata, %s_backups, and %s_pgdata-standby if PROFILE=scale ran).\n' "$project" "$project" "$project" "$project" >&2
		else
			printf 'This deletes the database of project %s (volume %s_pgdata, and %s_pgdata-standby if PROFILE=scale ran); the backups volume %s_backups stays (BACKUPS=1 deletes it too).\n' "$project" "$project" "$project" "$project" >&2
		fi
		local answer
		read -r -p 'Type the project name to confirm: ' answer
		[[ "$answer" == "$project" ]] || ops_die "not confirmed: nothing was deleted"
	fi
	if [[ "${BACKUPS:-}" == 1 ]]; then
		ops_step "removing project $project with its volumes, the backups included"
	else
		ops_step "removing project $project with its volumes, except the backups ($project""_backups)"
	fi
	# the on-demand services too (restore, restore-drill), so no container keeps a volume busy, and every
	# PROFILE's files (the standby's volume is only in compose/scale.yaml), whichever profile ran last
	local profiles=""
	if ! ops_external; then
		profiles="$(IFS=,; printf '%s' "${OPS_PROFILES[*]}")"
	fi
	if [[ "${BACKUPS:-}" == 1 ]]; then
		PROFILE="$profiles" COMPOSE_PROFILES=restore,drill "$OPS_ROOT/ops/compose.sh" down --volumes --remove-orphans
		clean_drill_scratch "$project"
		return 0
	fi
	PROFILE="$profiles" COMPOSE_PROFILES=restore,drill "$OPS_ROOT/ops/compose.sh" down --remove-orphans
	local volume
	while IFS= read -r volume; do
		[[ -n "$volume" && "$volume" != "${project}_backups" ]] || continue
		docker volume rm "$volume" >/dev/null
		ops_note "removed volume $volume"
	done < <(docker volume ls -q --filter "label=com.docker.compose.project=$project")
	clean_drill_scratch "$project"
	ops_note "kept volume ${project}_backups (make clean FORCE=1 BACKUPS=1 removes it)"
}

clean_main "$@"
