#!/usr/bin/env bash
# Make sure this machine can run the stack: a Docker Engine that answers, and Compose (v2 or v1.29).
# On a bare Debian/Ubuntu machine, as root, it installs what is missing from the distribution's packages
# and starts dockerd when nothing runs it (there may be no systemd). Elsewhere it says what to install.
# usage: ops/docker-engine.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/pgstack-dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

# usage: engine_install_packages PACKAGE...
engine_install_packages() {
	ops_install_packages \
		"install Docker Engine and the Compose plugin (https://docs.docker.com/engine/install/), then run make up again" \
		"$@"
}

# usage: engine_ensure_cli
# The docker client, and the daemon binary when we may have to start it ourselves.
engine_ensure_cli() {
	local missing=()
	command -v docker >/dev/null 2>&1 || missing+=(docker.io)
	if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
		missing+=(docker.io)
	fi
	if ((${#missing[@]})); then
		engine_install_packages docker.io
	fi
}

# usage: engine_ensure_daemon
# Starts dockerd in the background when no daemon answers, then waits for it.
engine_ensure_daemon() {
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	if [[ -S /var/run/docker.sock ]] && ! ops_is_root; then
		ops_die "the Docker daemon does not answer on /var/run/docker.sock" \
			"hint: add your user to the docker group (then log in again), or run as root"
	fi
	if ! ops_is_root; then
		ops_die "no Docker daemon is running and only root can start one" \
			"hint: start Docker (for example: sudo systemctl start docker), then run make up again"
	fi
	ops_step "starting dockerd (no Docker daemon was running); its log: $DOCKERD_LOG"
	nohup dockerd >>"$DOCKERD_LOG" 2>&1 &
	local deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
	until docker info >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			ops_die "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s" \
				"hint: its last lines:" "$(tail -n 5 "$DOCKERD_LOG" 2>/dev/null)"
		fi
		sleep 0.5
	done
	ops_note "dockerd is up: server $(docker version --format '{{.Server.Version}}')"
}

# usage: engine_ensure_compose
engine_ensure_compose() {
	if ops_compose_command >/dev/null; then
		return 0
	fi
	# Debian 12 ships Compose v1.29 as docker-compose; newer releases ship v2 as docker-compose-v2.
	local package=docker-compose
	if ops_can_install_packages; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		if apt-cache show docker-compose-v2 >/dev/null 2>&1; then
			package=docker-compose-v2
		fi
	fi
	engine_install_packages "$package"
	ops_compose_command >/dev/null || ops_die "Compose is still missing after the install" \
		"hint: install the Docker Compose plugin (docker compose) or docker-compose 1.29+"
}

engine_main() {
	ops_step "checking Docker Engine and Compose"
	engine_ensure_cli
	engine_ensure_daemon
	engine_ensure_compose
	ops_note "docker $(docker version --format '{{.Server.Version}}'), compose: $(ops_compose_command)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	engine_main "$@"
fi
