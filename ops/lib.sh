#!/usr/bin/env bash
# Shared helpers for the ops/ scripts. Source it; it defines functions and a few constants, runs nothing.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck disable=SC2034 # constants for the scripts that source this file
# The repository root, whatever directory a script is started from.
OPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPS_STATE_DIR="${OPS_STATE_DIR:-$OPS_ROOT/.state}"
OPS_COMPOSE_FILE="$OPS_ROOT/compose/compose.yaml"
OPS_ENV_FILE="$OPS_ROOT/compose/.env"
# The uid/gid the stack's processes run as inside their containers (postgres, mcp, backup).
OPS_SERVICE_UID=999

# usage: ops_step MESSAGE...
#    ie: ops_step "starting dockerd"
# Prints a step of a long operation, so a user sees what `make up` is doing as it happens.
ops_step() {
	printf '==> %s\n' "$*" >&2
}

# usage: ops_note MESSAGE...
ops_note() {
	printf '    %s\n' "$*" >&2
}

# usage: ops_warn MESSAGE...
ops_warn() {
	printf '%s: warning: %s\n' "$(basename "$0")" "$*" >&2
}

# usage: ops_die MESSAGE [HINT...]
#    ie: ops_die "unable to start dockerd" "hint: read /var/log/dockerd.log"
# Prints the error (and each hint on its own line) to stderr and exits 1.
ops_die() {
	printf '%s: error: %s\n' "$(basename "$0")" "$1" >&2
	shift
	local hint
	for hint in "$@"; do
		printf '    %s\n' "$hint" >&2
	done
	exit 1
}

# usage: ops_is_root
ops_is_root() {
	[[ "$(id -u)" -eq 0 ]]
}

# usage: ops_can_install_packages
# True on Debian or Ubuntu as root: the only place the ops/ scripts install packages.
ops_can_install_packages() {
	ops_is_root && command -v apt-get >/dev/null 2>&1 && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

# usage: ops_install_packages HINT PACKAGE...
#    ie: ops_install_packages "install ShellCheck (https://www.shellcheck.net)" shellcheck
# Installs PACKAGEs from the distribution's packages, or stops with HINT where it cannot.
ops_install_packages() {
	local hint="$1"
	shift
	if ! ops_can_install_packages; then
		ops_die "missing: $*" "hint: the ops/ scripts install them only on Debian/Ubuntu as root" "hint: $hint"
	fi
	ops_step "installing $* from the distribution's packages (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# usage: ops_compose_command
# Prints the Compose command this machine has: "docker compose" (v2) or "docker-compose" (v1.29).
ops_compose_command() {
	if docker compose version >/dev/null 2>&1; then
		printf 'docker compose'
	elif command -v docker-compose >/dev/null 2>&1; then
		printf 'docker-compose'
	else
		return 1
	fi
}

# usage: ops_load_image_choice
# Exports POSTGRES_IMAGE and PYTHON_IMAGE as chosen by ops/images.sh (official or offline stand-ins),
# unless the caller already set them.
ops_load_image_choice() {
	local choice="$OPS_STATE_DIR/images.env"
	if [[ -f "$choice" ]]; then
		local line key value
		while IFS= read -r line; do
			[[ "$line" == *=* ]] || continue
			key="${line%%=*}"
			value="${line#*=}"
			if [[ -z "${!key:-}" ]]; then
				export "$key=$value"
			fi
		done <"$choice"
	fi
}

# usage: ops_setting NAME DEFAULT
#    ie: ops_setting PG_PORT 5432
# The value Compose will use: the environment first, then compose/.env, then DEFAULT. (.env is data,
# never sourced: its values may contain spaces.)
ops_setting() {
	local name="$1" default="$2" line
	if [[ -n "${!name:-}" ]]; then
		printf '%s' "${!name}"
		return 0
	fi
	if [[ -f "$OPS_ENV_FILE" ]]; then
		line="$(grep -E "^${name}=" "$OPS_ENV_FILE" | tail -n 1 || :)" # ignore: no such line is fine
		if [[ -n "$line" ]]; then
			printf '%s' "${line#*=}"
			return 0
		fi
	fi
	printf '%s' "$default"
}
