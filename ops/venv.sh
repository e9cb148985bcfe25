#!/usr/bin/env bash
# Create the development virtualenv: locked dependencies, then the two service packages (editable).
# usage: ops/venv.sh [VENV_DIR]
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

venv_main() {
	local venv="${1:-$OPS_ROOT/.venv}"
	local python="${PYTHON:-python3}"
	"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		ops_die "$python is $("$python" --version 2>&1): Python 3.11 or newer is needed" "hint: PYTHON=python3.12 make venv"
	ops_step "creating the virtualenv $venv"
	"$python" -m venv "$venv"
	ops_pip "$venv/bin/python" install --quiet -r "$OPS_ROOT/requirements/dev.lock"
	ops_pip "$venv/bin/python" install --quiet --no-deps \
		-e "$OPS_ROOT/services/mcp" -e "$OPS_ROOT/services/backup"
	# the backup tests encrypt offsite copies with the real age and send them with the real rclone, as the
	# backup image does
	if ! command -v age >/dev/null 2>&1 || ! command -v rclone >/dev/null 2>&1; then
		ops_install_packages "install age (https://age-encryption.org) and rclone (https://rclone.org): Debian's packages" age rclone
	fi
	touch "$venv/.installed"
}

venv_main "$@"
