#!/usr/bin/env bash
# Print the version this checkout's images are tagged with (STACK_VERSION, or VERSION-<commit>[-dirty]).
# usage: ops/version.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ops_load_image_choice
printf '%s\n' "$STACK_VERSION"
