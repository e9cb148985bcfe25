#!/usr/bin/env bash
# `make lint`: the checks every change must pass, in the order Starlette's scripts/check runs them: the
# format, the types (mypy --strict), the lint rules (ruff), then the shell scripts (ShellCheck, installed
# from the distribution's packages where it is missing and we may).
# usage: ops/lint.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LINT_PYTHON_PATHS=(services devtools tests loadtests)

lint_main() {
	local venv="$OPS_VENV/bin"
	cd "$OPS_ROOT"
	if ! command -v shellcheck >/dev/null 2>&1; then
		ops_install_packages "install ShellCheck (https://www.shellcheck.net), then run make lint again" shellcheck
	fi
	ops_step "ruff format --check"
	"$venv/ruff" format --check "${LINT_PYTHON_PATHS[@]}"
	ops_step "mypy --strict"
	"$venv/mypy"
	ops_step "ruff check"
	"$venv/ruff" check "${LINT_PYTHON_PATHS[@]}"
	ops_step "shellcheck"
	shellcheck -x ops/*.sh ops/images/postgres/docker-entrypoint.sh compose/initdb/*.sh compose/postgres/standby.sh .ci/run
	ops_step "lint passed"
}

lint_main "$@"
