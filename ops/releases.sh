#!/usr/bin/env bash
# Releases: what a project ran, so that make rollback can return to it. Source it (after lib.sh); it defines
# functions and runs nothing.
#
# A release is a version of the stack's own images (STACK_VERSION: pgstack/mcp:<version>, ...; never
# overwritten, ops_build_services) together with the Compose files and base images that ran them: an older
# image may refuse a newer compose.yaml (each service refuses settings it does not know), so the files travel
# with it. Per project, in $OPS_STATE_DIR/releases/<project>/:
#   history              one line per successful make up, upgrade or rollback: "<UTC time> <version>"
#   <version>/compose/   a copy of compose/ as it was (secrets, .env and compose.override.yaml excluded: this
#                        checkout's own are used, ops/compose.sh)
#   <version>/images.env the base images it ran on (.state/images.env)
# The RELEASES_KEEP (default 5) most recent versions are kept.

# usage: releases_dir  -> this project's releases directory
releases_dir() {
	printf '%s/releases/%s' "$OPS_STATE_DIR" "${COMPOSE_PROJECT_NAME:-pgstack}"
}

# usage: releases_container SERVICE  -> the id of the service's first container, or nothing
releases_container() {
	"$OPS_ROOT/ops/compose.sh" ps -q "$1" 2>/dev/null | head -n 1
}

# usage: releases_running SERVICE  -> the version the service's (first) container runs: the tag of the image
# Compose made it from (pgstack/mcp:<version>); fails when the service has no container
releases_running() {
	local id image
	id="$(releases_container "$1")"
	[[ -n "$id" ]] || return 1
	image="$(docker inspect --format '{{.Config.Image}}' "$id")"
	printf '%s' "${image##*:}"
}

# usage: releases_config_dir SERVICE  -> the directory of the Compose files the service's container was made
# with (Compose records them in a label), or nothing
releases_config_dir() {
	local id files
	id="$(releases_container "$1")"
	[[ -n "$id" ]] || return 0
	files="$(docker inspect --format '{{index .Config.Labels "com.docker.compose.project.config_files"}}' "$id")"
	[[ -n "$files" && "$files" != "<no value>" ]] || return 0
	dirname "${files%%,*}"
}

# usage: releases_save VERSION COMPOSE_DIR IMAGES_ENV
# Keeps a copy of COMPOSE_DIR and IMAGES_ENV as VERSION's release, unless a clean version's copy is there
# already (a version's files, like its images, do not change).
releases_save() {
	local version="$1" source="$2" images="$3" target
	target="$(releases_dir)/$version"
	if [[ -d "$target/compose" && ("$version" != *-dirty || "$source" -ef "$target/compose") ]]; then
		return 0 # kept already, or the copy itself runs (make rollback)
	fi
	mkdir -p "$target"
	rm -rf "$target/compose.new"
	mkdir "$target/compose.new"
	tar -C "$source" --exclude=./secrets --exclude=./.env --exclude=./compose.override.yaml -cf - . |
		tar -C "$target/compose.new" -xf -
	rm -rf "$target/compose"
	mv "$target/compose.new" "$target/compose"
	if [[ -f "$images" ]]; then
		cp "$images" "$target/images.env"
	fi
}

# usage: releases_record VERSION [COMPOSE_DIR]
# VERSION runs with COMPOSE_DIR's files (default: the ones ops/compose.sh runs, this checkout's or, on rollback,
# the release's own copy): kept, and appended to the history.
releases_record() {
	local version="$1" dir
	dir="$(releases_dir)"
	releases_save "$version" "${2:-$OPS_COMPOSE_DIR}" "${OPS_IMAGE_CHOICE:-$OPS_STATE_DIR/images.env}"
	printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$version" >>"$dir/history"
	releases_prune
}

# usage: releases_last  -> the version of the last successful deploy, or nothing
releases_last() {
	local history
	history="$(releases_dir)/history"
	[[ -f "$history" ]] || return 0
	tail -n 1 "$history" | cut -d ' ' -f 2
}

# usage: releases_before VERSION  -> the most recent other version in the history, or nothing
releases_before() {
	local history
	history="$(releases_dir)/history"
	[[ -f "$history" ]] || return 0
	cut -d ' ' -f 2 "$history" | grep -vxF -- "$1" | tail -n 1 || true
}

# usage: releases_prune  (keeps the RELEASES_KEEP most recent versions of the history)
releases_prune() {
	local dir keep="${RELEASES_KEEP:-5}" entry
	dir="$(releases_dir)"
	local -A recent=()
	while IFS= read -r entry; do
		recent["$entry"]=1
	done < <(cut -d ' ' -f 2 "$dir/history" | tac | awk '!seen[$0]++' | head -n "$keep")
	for entry in "$dir"/*/; do
		entry="$(basename "$entry")"
		[[ -n "${recent[$entry]:-}" ]] || rm -rf "${dir:?}/$entry"
	done
}

# usage: releases_services  -> the stack's services that run the stack's own images or hold its data, in the
# order they are replaced: postgres (not in external mode), backup, pgbouncer (PROFILE=pooler), mcp
releases_services() {
	if ! ops_external; then
		printf '%s ' postgres
	fi
	printf '%s ' backup
	if ops_profile pooler; then
		printf '%s ' pgbouncer
	fi
	printf '%s\n' mcp
}

# usage: releases_replace SERVICE  (with STACK_VERSION and the files to run set)
# Recreates one service from its image (never a build) if its configuration or image changed, and waits until
# it is healthy (RELEASES_HEALTH_TIMEOUT seconds, default 300).
releases_replace() {
	"$OPS_ROOT/ops/compose.sh" up -d --no-deps --no-build "$1" &&
		WAIT_TIMEOUT="${RELEASES_HEALTH_TIMEOUT:-300}" "$OPS_ROOT/ops/wait-healthy.sh" "$1"
}

# usage: releases_smoke  -> one query tool call through the running mcp service (ops/smoke.py), with the first
# API key of the key file written as name:key (the stack's own default key); without one, /readyz only
releases_smoke() {
	local key
	key="$(grep -v '^[[:space:]]*#' "$(ops_secrets_dir)/mcp_api_keys" 2>/dev/null |
		awk -F: 'NF >= 2 && $2 !~ /^sha256$/ && $0 !~ / / {print $2; exit}')" || key=""
	if [[ -z "$key" ]]; then
		ops_warn "no API key in plain form in $(ops_secrets_dir)/mcp_api_keys: the smoke test is /readyz only"
		"$OPS_ROOT/ops/compose.sh" exec -T mcp python -c \
			"import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8080/readyz', headers={'Host': '127.0.0.1'}), timeout=10)"
		return
	fi
	printf '%s\n' "$key" | "$OPS_ROOT/ops/compose.sh" exec -T mcp python -c "$(cat "$OPS_ROOT/ops/smoke.py")"
}
