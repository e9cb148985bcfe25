#!/usr/bin/env bash
# `make upgrade`: replace the running stack's version with this checkout's (or STACK_VERSION's), safely.
#   1. what runs now is recorded as a release, the way back (ops/releases.sh)
#   2. the new version's images are built (never over an existing clean version's)
#   3. a backup set is taken and verified by the running backup sidecar
#   4. the new version's restore drill restores that set into a throwaway server (a version that cannot
#      restore the backups stops here, with nothing replaced)
#   5. postgres (a new POSTGRES_IMAGE: a minor upgrade), backup, pgbouncer and mcp are recreated one at a time,
#      each healthy before the next, then the rest of the stack's services
#   6. a smoke query goes through the new MCP server
# Any failure stops the upgrade and says how to go back: make rollback.
#   RELEASES_HEALTH_TIMEOUT  seconds each replaced service has to turn healthy (default 300)
# usage: ops/upgrade.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ops/releases.sh
source "$OPS_ROOT/ops/releases.sh"

UPGRADE_REPLACED=0

# usage: upgrade_fail STEP WHY...
upgrade_fail() {
	local step="$1"
	shift
	if ((UPGRADE_REPLACED)); then
		ops_die "the upgrade from $UPGRADE_FROM to $STACK_VERSION stopped at $step: $*" \
			"the data is untouched: backup set $UPGRADE_SET was verified and restored by a drill before anything was replaced" \
			"hint: make rollback (returns every service to $UPGRADE_FROM, with its own Compose files), then read the logs: make logs SERVICE=<service>"
	fi
	ops_die "the upgrade from $UPGRADE_FROM to $STACK_VERSION stopped at $step, before anything was replaced: $*" \
		"hint: the stack still runs $UPGRADE_FROM; fix what is above and run make upgrade again"
}

upgrade_main() {
	ops_load_image_choice # and STACK_VERSION
	UPGRADE_FROM="$(releases_running mcp)" ||
		ops_die "project ${COMPOSE_PROJECT_NAME:-pgstack} has no mcp container: nothing to upgrade" \
			"hint: make up starts the stack; make upgrade replaces a running one"
	UPGRADE_SET="(none yet)"
	if [[ "$UPGRADE_FROM" == "$STACK_VERSION" && "$STACK_VERSION" != *-dirty ]]; then
		ops_note "mcp already runs version $STACK_VERSION: nothing to upgrade"
		return 0
	fi
	ops_step "upgrading project ${COMPOSE_PROJECT_NAME:-pgstack} from $UPGRADE_FROM to $STACK_VERSION"

	ops_step "1/6 recording $UPGRADE_FROM as the way back"
	if [[ "$(releases_last)" != "$UPGRADE_FROM" ]]; then
		local running_files
		running_files="$(releases_config_dir mcp)"
		if [[ -n "$running_files" && -f "$running_files/compose.yaml" ]]; then
			releases_record "$UPGRADE_FROM" "$running_files"
			ops_note "saved the Compose files $UPGRADE_FROM runs with ($running_files)"
		else
			ops_warn "no copy of the Compose files $UPGRADE_FROM runs with: make rollback would use this checkout's"
		fi
	fi

	ops_step "2/6 building version $STACK_VERSION"
	ops_build_services

	ops_step "3/6 taking a backup set with the running backup sidecar ($UPGRADE_FROM)"
	local output
	output="$("$OPS_ROOT/ops/compose.sh" exec -T backup python -m pgbackup backup 2>&1)" ||
		upgrade_fail "the backup" "no verified backup set: $(tail -n 3 <<<"$output")" \
			"(runbooks/backup-stale.md)"
	UPGRADE_SET="$(sed -n 's/^backup set \([^:]*\): verified.*/\1/p' <<<"$output" | head -n 1)"
	[[ -n "$UPGRADE_SET" ]] || upgrade_fail "the backup" "the backup sidecar did not name a verified set: $(tail -n 3 <<<"$output")"
	ops_note "backup set $UPGRADE_SET verified"

	ops_step "4/6 restore drill of set $UPGRADE_SET with version $STACK_VERSION"
	"$OPS_ROOT/ops/restore-drill.sh" --set "$UPGRADE_SET" ||
		upgrade_fail "the restore drill" "version $STACK_VERSION did not restore backup set $UPGRADE_SET (its report is above)"

	ops_step "5/6 replacing the services one at a time"
	local service
	for service in $(releases_services); do
		UPGRADE_REPLACED=1
		ops_note "replacing $service"
		releases_replace "$service" || upgrade_fail "replacing $service" "$service did not turn healthy on $STACK_VERSION"
	done
	"$OPS_ROOT/ops/compose.sh" up -d --no-build ||
		upgrade_fail "starting the other services" "docker compose up failed"

	ops_step "6/6 smoke query through the MCP server"
	releases_smoke || upgrade_fail "the smoke query" "the MCP server on $STACK_VERSION did not answer a query"
	releases_record "$STACK_VERSION"
	ops_step "upgraded from $UPGRADE_FROM to $STACK_VERSION after $(ops_elapsed) (make rollback returns to $UPGRADE_FROM)"
}

upgrade_main "$@"
