"""`prune [--dry-run]`: apply the retention policy now, or only show what it would do."""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from pgbackup.catalog import scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode
from pgbackup.files import exclusive_lock
from pgbackup.retention import prune

NAME = "prune"
HELP = "delete the sets the retention policy no longer keeps (--dry-run: only list them)"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be kept and deleted; delete nothing")


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    settings.sets_dir.mkdir(parents=True, exist_ok=True)
    lock = nullcontext() if args.dry_run else exclusive_lock(settings.backup_dir / ".run.lock", what="prune")
    with lock:
        sets = {backup_set.id: backup_set for backup_set in scan(settings.sets_dir).sets}
        plan = prune(settings, clock=clock, dry_run=args.dry_run)
    verb = "to delete" if args.dry_run else "deleted"
    for set_id in sorted(set(plan.keep) | set(plan.delete)):
        verified = "verified" if set_id in sets and sets[set_id].verified else "unverified"
        if set_id in plan.keep:
            print(f"keep    {set_id}  {verified:<10}  {', '.join(plan.keep[set_id])}")
        else:
            print(f"{'delete' if args.dry_run else 'deleted'} {set_id}  {verified}")
    print(f"{len(plan.keep)} kept, {len(plan.delete)} {verb}")
    return ExitCode.OK
