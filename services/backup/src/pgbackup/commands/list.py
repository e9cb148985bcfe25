"""`list`: the sets with id, age, size, verification and databases (what `make backups` shows)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pgbackup.catalog import scan
from pgbackup.clock import Clock, from_iso, to_iso
from pgbackup.config import Settings
from pgbackup.errors import ExitCode

NAME = "list"
HELP = "list the backup sets: id, age, size, verdict and last check (a failed one with what it found), databases"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    catalog = scan(settings.sets_dir)
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for backup_set in reversed(catalog.sets):
        verification = backup_set.verification
        latest = None if verification is None else verification.latest
        rows.append(
            {
                "id": backup_set.id,
                "snapshot_at": to_iso(backup_set.snapshot_at),
                "age_seconds": round((now - backup_set.snapshot_at).total_seconds(), 1),
                "bytes": backup_set.manifest.bytes,
                "verified": "never" if latest is None else ("yes" if latest.ok else "FAILED"),
                "verified_at": None if latest is None else to_iso(latest.at),
                "last_check": None if latest is None else latest.kind,
                "error": None if latest is None else latest.error,
                "checks": 0 if verification is None else len(verification.history),
                "databases": [database.name for database in backup_set.manifest.databases],
            }
        )
    if args.json:
        print(json.dumps({"sets": rows, "damaged": [path.name for path in catalog.damaged]}, indent=2))
        return ExitCode.OK
    print(f"{'ID':<20} {'AGE':>7} {'SIZE':>10}  {'VERIFIED':<8}  {'LAST CHECK':<28}  DATABASES")
    for row in rows:
        checked = (
            "-"
            if row["last_check"] is None
            else f"{row['last_check']} {human_age((now - from_iso(row['verified_at'])).total_seconds())} ago"
        )
        print(
            f"{row['id']:<20} {human_age(row['age_seconds']):>7} {human_size(row['bytes']):>10}  "
            f"{row['verified']:<8}  {checked:<28}  {','.join(row['databases'])}"
        )
        if row["verified"] == "FAILED":
            print(f"{'':<20}   {row['last_check']} at {row['verified_at']} found: {row['error']}")
    for path in catalog.damaged:
        print(f"{path.name:<20} {'?':>7} {'?':>10}  {'DAMAGED':<8}  (manifest unreadable)")
    if not rows and not catalog.damaged:
        print(f"(no backup sets in {settings.sets_dir} yet: `make backup-now` takes one)")
    return ExitCode.OK
