#!/usr/bin/env bash
# `make test`: both tiers in one pytest run. The stack tier needs Docker: this script makes it work
# (installing and starting it where it can) and fails, never skips, when it cannot.
# usage: ops/test.sh [pytest-args...]
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

test_main() {
	"$OPS_ROOT/ops/docker-engine.sh"
	"$OPS_ROOT/ops/secrets.sh"
	"$OPS_ROOT/ops/images.sh"
	# built here, with its steps shown: the stack tier's own build (tests/fixtures/stack.py) is then cached. In a
	# subshell: the image choice it loads (POSTGRES_IMAGE, ...) must not reach the tests' environment, where it
	# would override each test project's own choice
	(ops_build_services)
	ops_step "running the test suite (fast tier, then stack tier)"
	cd "$OPS_ROOT"
	local status=0
	"$OPS_VENV/bin/python" -m pytest "$@" || status=$?
	ops_step "the test suite finished with exit status $status, after $(ops_elapsed)"
	return "$status"
}

test_main "$@"
