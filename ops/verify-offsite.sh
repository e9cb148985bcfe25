#!/usr/bin/env bash
# `make verify-offsite`: download an offsite copy (the newest, or BACKUP=<id>), decrypt it with the age private
# key AGE_KEY names, and check every file's SHA-256 against the set's manifest and every archive's listing, in a
# one-off container of the backup service (PROFILE=offsite). The key goes to the container on stdin and lives in
# its memory-backed /tmp for the command only; the copy is only read.
# usage: AGE_KEY=FILE ops/verify-offsite.sh [--set ID|latest]
#    ie: AGE_KEY=~/offsite-key.txt ops/verify-offsite.sh --set latest
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

verify_offsite_main() {
	ops_offsite_key_check
	ops_profile offsite || ops_die "offsite copies need PROFILE=offsite (the secret access key and the way out)" \
		"hint: make verify-offsite PROFILE=offsite AGE_KEY=$AGE_KEY, or set PROFILE=offsite in compose/.env"
	ops_step "verifying an offsite copy with the key in $AGE_KEY"
	exec "$OPS_ROOT/ops/compose.sh" run --rm --no-deps -T backup verify-offsite "$@" --identity - <"$AGE_KEY"
}

verify_offsite_main "$@"
