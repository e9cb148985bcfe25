#!/usr/bin/env bash
# `make drills`: the past restore drills, read from the backup sidecar (python -m pgbackup drills): one line each
# (date, set, verdict, RTO, RPO, scratch) on stdout, and the latest with the RTO/RPO trend of the drills before it
# written to REPORTS_DIR as drills.md and drills.html.
#   REPORTS_DIR  where the two files go (default reports/ in the repository, git-ignored)
# usage: ops/drills.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# usage: drills_write FORMAT FILE  -> FILE holds `pgbackup drills --format FORMAT`, replaced only when complete
drills_write() {
	"$OPS_ROOT/ops/compose.sh" exec -T backup python -m pgbackup drills --format "$1" >"$2.partial"
	mv "$2.partial" "$2"
}

drills_main() {
	local dir="${REPORTS_DIR:-$OPS_ROOT/reports}"
	mkdir -p "$dir"
	"$OPS_ROOT/ops/compose.sh" exec -T backup python -m pgbackup drills
	drills_write markdown "$dir/drills.md"
	drills_write html "$dir/drills.html"
	printf 'latest drill and trend: %s, %s\n' "$dir/drills.md" "$dir/drills.html"
}

drills_main "$@"
