#!/usr/bin/env bash
# shellcheck disable=SC2016 # the single-quoted scripts run in the containers, which expand them
# `make upgrade-postgres MAJOR=19`: the bundled PostgreSQL to its next major release, with pg_upgrade.
#   1. checks: the bundled postgres (not external mode, not PROFILE=scale: a standby is cloned again after a
#      major upgrade), an older major running, room in the data volume for a copy of the cluster
#   2. the new major's image (ops/images.sh --postgres-major: the new server with the old one's binaries)
#   3. what runs now is recorded as a release, the way back; a backup set is taken and verified
#   4. mcp, backup and postgres stop (a clean shutdown of the old cluster)
#   5. in a one-off container without network: initdb of the new cluster beside the old one in the same
#      volume (/var/lib/postgresql/<major>/docker, the official images' layout) with the stack's initdb options,
#      pg_upgrade --check, then pg_upgrade in copy mode: the old cluster is left exactly as it was
#   6. the stack on the new major: POSTGRES_IMAGE becomes the new image (in .state/images.env, or
#      OPS_IMAGE_CHOICE), the stack's version gains -pg<major> and its backup image is built on it; postgres,
#      backup and mcp are replaced one at a time; statistics pg_upgrade did not carry are gathered; a smoke
#      query; a backup set of the new cluster, verified
# The way back: make rollback (the old release, on the old cluster as it was before step 4; writes made since
# are not in it): runbooks/upgrade-postgres-major.md.
# usage: ops/upgrade-postgres.sh MAJOR
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ops/releases.sh
source "$OPS_ROOT/ops/releases.sh"

# usage: major_upgrade_cluster IMAGE VOLUME OLD NEW INITDB_ARGS  (the old cluster stopped)
major_upgrade_cluster() {
	local image="$1" volume="$2" old="$3" new="$4" initdb_args="$5"
	# shellcheck disable=SC2016 # expanded by the container's shell
	docker run --rm --network none --user 999:999 --workdir /var/lib/postgresql \
		--volume "$volume:/var/lib/postgresql" \
		--env OLD="$old" --env NEW="$new" --env INITDB_ARGS="$initdb_args" \
		--entrypoint bash "$image" -Eeuo pipefail -c '
			old_data="/var/lib/postgresql/$OLD/docker" new_data="/var/lib/postgresql/$NEW/docker"
			[[ "$(cat "$old_data/PG_VERSION")" == "$OLD" ]] || { echo "no PostgreSQL $OLD cluster in $old_data" >&2; exit 1; }
			if [[ -e "$new_data" ]]; then
				echo "removing $new_data, left by an earlier attempt that did not finish"
				rm -rf "$new_data"
			fi
			mkdir -p "$new_data"
			chmod 0700 "$new_data"
			# shellcheck disable=SC2086 # the stack'"'"'s POSTGRES_INITDB_ARGS, split on whitespace as the entrypoint does
			"/usr/lib/postgresql/$NEW/bin/initdb" --pgdata="$new_data" --username=postgres --auth=trust $INITDB_ARGS >/dev/null
			# both servers pg_upgrade starts: Unix socket only, trusted (no network in this container)
			printf "local all all trust\n" >/tmp/upgrade_hba.conf
			options="-c hba_file=/tmp/upgrade_hba.conf -c shared_preload_libraries=pg_stat_statements"
			cd "/var/lib/postgresql/$NEW"
			upgrade=("/usr/lib/postgresql/$NEW/bin/pg_upgrade" --username=postgres --copy
				--old-bindir="/usr/lib/postgresql/$OLD/bin" --new-bindir="/usr/lib/postgresql/$NEW/bin"
				--old-datadir="$old_data" --new-datadir="$new_data" --old-options="$options" --new-options="$options")
			"${upgrade[@]}" --check
			"${upgrade[@]}"
		'
}

major_main() {
	local major="${1:-}"
	[[ "$major" =~ ^[0-9]+$ ]] || ops_die "usage: make upgrade-postgres MAJOR=<major>" "hint: make upgrade-postgres MAJOR=19"
	ops_external && ops_die "make upgrade-postgres upgrades the bundled postgres; in external mode the server is yours" \
		"hint: upgrade your server as its operator does, then make upgrade (the stack follows)"
	ops_profile scale && ops_die "make upgrade-postgres does not carry a hot standby across a major release" \
		"hint: make up without PROFILE=scale (remove postgres-standby and its volume), upgrade, then make up PROFILE=scale again"
	ops_load_image_choice
	local from_version old
	from_version="$(releases_running mcp)" ||
		ops_die "project ${COMPOSE_PROJECT_NAME:-pgstack} has no mcp container" "hint: make up first"
	old="$("$OPS_ROOT/ops/compose.sh" exec -T postgres bash -c 'cat "$PGDATA/PG_VERSION"')" ||
		ops_die "the postgres service does not answer" "hint: make ps; runbooks/postgres-down.md"
	((major > old)) || ops_die "postgres runs PostgreSQL $old already: nothing to upgrade to $major" \
		"hint: make upgrade-postgres MAJOR=<a later major>"
	local initdb_args volume
	initdb_args="$("$OPS_ROOT/ops/compose.sh" exec -T postgres printenv POSTGRES_INITDB_ARGS || true)"
	volume="${COMPOSE_PROJECT_NAME:-pgstack}_pgdata"
	ops_step "upgrading project ${COMPOSE_PROJECT_NAME:-pgstack}'s PostgreSQL from $old to $major (pg_upgrade, copy mode)"

	ops_step "1/6 room for a copy of the cluster in the data volume"
	local used free
	used="$("$OPS_ROOT/ops/compose.sh" exec -T postgres bash -c 'du -sk "$PGDATA" | cut -f 1')"
	free="$("$OPS_ROOT/ops/compose.sh" exec -T postgres bash -c 'df -Pk "$PGDATA" | awk "NR == 2 {print \$4}"')"
	((free > used * 11 / 10)) ||
		ops_die "the data volume has $((free / 1024)) MiB free; a copy of the cluster needs $((used / 1024)) MiB and a margin" \
			"hint: free space on the volume's disk (docker system df), then run make upgrade-postgres again"
	ops_note "the cluster uses $((used / 1024)) MiB, $((free / 1024)) MiB free"

	ops_step "2/6 the PostgreSQL $major image"
	local image
	image="$("$OPS_ROOT/ops/images.sh" --postgres-major "$major" | tail -n 1)"
	ops_note "$image"

	ops_step "3/6 the way back ($from_version on PostgreSQL $old) and a verified backup set"
	if [[ "$(releases_last)" != "$from_version" ]]; then
		releases_record "$from_version"
	fi
	"$OPS_ROOT/ops/compose.sh" exec -T backup python -m pgbackup backup ||
		ops_die "no verified backup set: the upgrade did not start" "hint: runbooks/backup-stale.md, then again"

	ops_step "4/6 stopping mcp, backup and postgres"
	"$OPS_ROOT/ops/compose.sh" stop mcp backup postgres

	ops_step "5/6 pg_upgrade from $old to $major in $volume"
	if ! major_upgrade_cluster "$image" "$volume" "$old" "$major" "$initdb_args"; then
		ops_warn "pg_upgrade failed: starting PostgreSQL $old again on its cluster, which it did not change"
		"$OPS_ROOT/ops/compose.sh" start postgres backup mcp || true
		ops_die "the upgrade to PostgreSQL $major failed (its report is above); the stack runs $old again as before" \
			"hint: fix what pg_upgrade reports (an extension, a setting), then run make upgrade-postgres MAJOR=$major again"
	fi

	ops_step "6/6 the stack on PostgreSQL $major"
	local choice="${OPS_IMAGE_CHOICE:-$OPS_STATE_DIR/images.env}"
	sed -i "s|^POSTGRES_IMAGE=.*|POSTGRES_IMAGE=$image|" "$choice"
	export POSTGRES_IMAGE="$image"
	unset STACK_VERSION
	ops_build_services
	local service
	for service in postgres backup mcp; do
		ops_note "replacing $service"
		releases_replace "$service" ||
			ops_die "$service did not turn healthy on PostgreSQL $major" \
				"hint: make rollback (back to $from_version on PostgreSQL $old, its cluster as it was before the upgrade)"
	done
	"$OPS_ROOT/ops/psql.sh" postgres -v ON_ERROR_STOP=1 -tAc "SELECT version()" </dev/null
	# PostgreSQL 18 and later carry the planner's statistics across pg_upgrade; what is missing is gathered
	"$OPS_ROOT/ops/compose.sh" exec -T postgres bash -c \
		'PGPASSWORD="$(cat /run/secrets/postgres_password)" PGSSLMODE=verify-full PGSSLROOTCERT=/run/secrets/tls_ca_cert vacuumdb -h 127.0.0.1 -U postgres --all --analyze-in-stages --missing-stats-only' >/dev/null
	releases_smoke || ops_die "the MCP server did not answer the smoke query on PostgreSQL $major" \
		"hint: make rollback (back to $from_version on PostgreSQL $old)"
	"$OPS_ROOT/ops/compose.sh" exec -T backup python -m pgbackup backup ||
		ops_die "the first backup set on PostgreSQL $major failed" "hint: runbooks/backup-stale.md"
	releases_record "$STACK_VERSION"
	ops_step "PostgreSQL $old -> $major after $(ops_elapsed); the old cluster stays in $volume ($old/docker) for make rollback until you remove it (runbooks/upgrade-postgres-major.md)"
}

major_main "$@"
