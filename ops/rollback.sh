#!/usr/bin/env bash
# `make rollback`: return the running stack to the release before the one it runs (ops/releases.sh), with that
# release's own images and Compose files: after a failed make upgrade, to the last version that ran healthy;
# after a successful one, to the version before it. Services are replaced one at a time, each healthy before
# the next, then a smoke query goes through the MCP server. The data stays: volumes are never touched (a
# PostgreSQL major upgrade's way back is in runbooks/upgrade-postgres-major.md).
#   RELEASES_HEALTH_TIMEOUT  seconds each replaced service has to turn healthy (default 300)
# usage: ops/rollback.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ops/releases.sh
source "$OPS_ROOT/ops/releases.sh"

rollback_main() {
	local running last target dir
	running="$(releases_running mcp)" || running=""
	last="$(releases_last)"
	if [[ -n "$last" && "$last" != "$running" ]]; then
		target="$last" # a failed upgrade: back to the last version that ran healthy
	else
		target="$(releases_before "$running")"
	fi
	[[ -n "$target" ]] ||
		ops_die "no release of project ${COMPOSE_PROJECT_NAME:-pgstack} before ${running:-the running one} is recorded in $(releases_dir)/history" \
			"hint: make rollback returns to what make up or make upgrade last ran; check out the version you want and make upgrade"
	dir="$(releases_dir)/$target"
	[[ -f "$dir/compose/compose.yaml" ]] ||
		ops_die "release $target has no copy of its Compose files in $dir" \
			"hint: check out version $target (git checkout <commit>) and run make upgrade there"
	local service
	for service in mcp backup; do
		docker image inspect "pgstack/$service:$target" >/dev/null 2>&1 ||
			ops_die "the image pgstack/$service:$target is gone (docker image rm or prune)" \
				"hint: check out version $target (git checkout <commit>) and run make upgrade there: it builds it again"
	done
	local choice="${OPS_IMAGE_CHOICE:-$OPS_STATE_DIR/images.env}"
	export OPS_COMPOSE_DIR="$dir/compose" STACK_VERSION="$target"
	if [[ -f "$dir/images.env" ]]; then
		export OPS_IMAGE_CHOICE="$dir/images.env"
		# its base images become the choice again (after make upgrade-postgres: the old major's)
		if ! cmp -s "$dir/images.env" "$choice"; then
			cp "$dir/images.env" "$choice"
			ops_note "base images as $target had them: $choice"
		fi
	fi
	ops_step "rolling project ${COMPOSE_PROJECT_NAME:-pgstack} back from ${running:-nothing} to $target (its files: $dir/compose)"
	for service in $(releases_services); do
		ops_note "replacing $service"
		releases_replace "$service" ||
			ops_die "the rollback to $target stopped: $service did not turn healthy" \
				"hint: make logs SERVICE=$service; the data is untouched (runbooks/restore.md if it is not)"
	done
	"$OPS_ROOT/ops/compose.sh" up -d --no-build || ops_die "the rollback to $target could not start the other services"
	releases_smoke || ops_die "the rollback to $target: the MCP server did not answer the smoke query" \
		"hint: make logs SERVICE=mcp"
	releases_record "$target"
	ops_step "rolled back to $target after $(ops_elapsed)"
}

rollback_main "$@"
