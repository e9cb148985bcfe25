#!/usr/bin/env bash
# Build the stack's own images (mcp, backup; pgbouncer with PROFILE=pooler) for this checkout's version
# (ops_stack_version), unless a clean version's images exist already: they are never overwritten.
# usage: ops/build.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ops_build_services
