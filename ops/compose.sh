#!/usr/bin/env bash
# Run Compose v2 (`docker compose`) on the stack with the right project name and base images.
#   COMPOSE_PROJECT_NAME  project (container and volume prefix), default pgstack
#   POSTGRES_IMAGE, PYTHON_IMAGE  override the choice ops/images.sh recorded
#   PROFILE  optional profiles, comma-separated (scale, pooler, tls, monitoring); from the environment or compose/.env
#   MCP_PUBLISH_ADDRESS  where PROFILE=tls publishes HTTPS (default 127.0.0.1); anything else needs PROFILE=tls
#   PGSTACK_OVERRIDE_FILE  your Compose overrides (default compose/compose.override.yaml, used when it exists)
#   STACK_VERSION  the version of the stack's own images (default: this checkout's, ops/version.sh)
#   OPS_COMPOSE_DIR, OPS_IMAGE_CHOICE  a release's copy of compose/ and of .state/images.env (make rollback)
# The files: compose/compose.yaml; compose/external.yaml in external mode (make external); compose/<profile>.yaml
# for each of PROFILE's profiles (PROFILE=scale: compose/scale.yaml); the override last.
# usage: ops/compose.sh COMPOSE-ARGS...
#    ie: ops/compose.sh ps
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

compose_main() {
	ops_load_image_choice
	ops_compose_version >/dev/null || ops_die "Docker Compose v2 (docker compose) is not installed" \
		"hint: run make up (it installs the Compose v2 plugin pinned in requirements/dev.lock)"
	local -a files=(--file "$OPS_COMPOSE_FILE")
	if ops_external; then
		files+=(--file "$OPS_EXTERNAL_FILE")
	fi
	local profile profiles
	profiles="$(ops_profiles)" || exit 1
	for profile in $profiles; do
		if [[ "$profile" == scale ]] && ops_external; then
			ops_die "PROFILE=scale needs the bundled postgres (its hot standby is cloned from it)" \
				"hint: in external mode, point MCP_DATABASE_URL at your standbys and primary (a host list with target_session_attrs=prefer-standby)"
		fi
		if [[ "$profile" == monitoring ]] && ops_external; then
			ops_die "PROFILE=monitoring needs the bundled postgres (postgres_exporter logs in to it as backup_operator)" \
				"hint: monitor your own server with an exporter of yours, or make bundled, then make up PROFILE=monitoring"
		fi
		files+=(--file "$OPS_COMPOSE_DIR/$profile.yaml")
	done
	local publish
	publish="$(ops_setting MCP_PUBLISH_ADDRESS 127.0.0.1)"
	if [[ "$publish" != 127.0.0.1 && "$publish" != "[::1]" ]] && ! ops_profile tls; then
		ops_die "MCP_PUBLISH_ADDRESS=$publish would publish the MCP endpoint beyond this machine without TLS" \
			"hint: make up PROFILE=tls (HTTPS through Caddy, MCP_PUBLIC_URL=https://<name clients use>:<port>), or MCP_PUBLISH_ADDRESS=127.0.0.1"
	fi
	if [[ -f "$OPS_OVERRIDE_FILE" ]]; then
		files+=(--file "$OPS_OVERRIDE_FILE")
	fi
	if [[ "$OPS_COMPOSE_DIR" != "$OPS_ROOT/compose" ]]; then
		# a release's copy of the files (ops/releases.sh): this checkout's settings and secrets
		export SECRETS_DIR
		SECRETS_DIR="$(ops_secrets_dir)"
		if [[ -f "$OPS_ENV_FILE" ]]; then
			files+=(--env-file "$OPS_ENV_FILE")
		fi
	fi
	exec docker compose --project-name "${COMPOSE_PROJECT_NAME:-pgstack}" "${files[@]}" "$@"
}

compose_main "$@"
