#!/usr/bin/env bash
# Run Compose on the stack with the right binary, project name and base images.
#   COMPOSE_PROJECT_NAME  project (container and volume prefix), default pgstack
#   POSTGRES_IMAGE, PYTHON_IMAGE  override the choice ops/images.sh recorded
# usage: ops/compose.sh COMPOSE-ARGS...
#    ie: ops/compose.sh ps
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

compose_main() {
	ops_load_image_choice
	local command
	command="$(ops_compose_command)" || ops_die "neither 'docker compose' nor 'docker-compose' is installed" \
		"hint: run make up (it installs Compose on Debian/Ubuntu as root)"
	local -a compose
	read -r -a compose <<<"$command"
	exec "${compose[@]}" --project-name "${COMPOSE_PROJECT_NAME:-pgstack}" --file "$OPS_COMPOSE_FILE" "$@"
}

compose_main "$@"
