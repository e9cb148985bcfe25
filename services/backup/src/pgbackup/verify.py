"""Verify a backup set against its manifest: every checksum re-read from disk, every archive listable
by pg_restore, and every table whose rows the manifest counted present as data in its archive."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pgbackup.cancel import Cancellation
from pgbackup.clock import Clock
from pgbackup.files import drop_cache, sha256_file
from pgbackup.manifest import Database, Manifest, Verdict
from pgbackup.pgtools import base_env, find_tool, run_tool

logger = logging.getLogger(__name__)


def check_checksums(directory: Path, manifest: Manifest, on_read: Callable[[int], None] | None = None) -> list[str]:
    """Problems found re-reading every file of the set (size, then sha256); empty when all match. `on_read(n)`
    after every chunk read (a scrub's rate limit)."""
    problems = []
    for entry in manifest.files:
        path = directory / entry.name
        if not path.is_file():
            problems.append(f"{entry.name}: missing")
            continue
        size = path.stat().st_size
        if size != entry.bytes:
            problems.append(f"{entry.name}: {size} bytes on disk, {entry.bytes} in the manifest")
            continue
        drop_cache(path)  # read what is on the disk, not what the page cache still holds
        digest = sha256_file(path, on_read)
        if digest != entry.sha256:
            problems.append(f"{entry.name}: sha256 {digest} on disk, {entry.sha256} in the manifest")
    return problems


MISSING_SHOWN = 10
"""Tables named in a problem about an archive without their data; the rest are counted."""


def missing_table_data(listing: str, database: Database) -> list[str]:
    """The tables of `database` (as `schema.table`) that have no TABLE DATA entry in its archive's
    `pg_restore --list` output; the listing's `;` comment lines are not entries."""
    entries = [line for line in listing.splitlines() if line and not line.startswith(";")]
    return [
        f"{table.schema}.{table.table}"
        for table in database.tables
        if not any(f" TABLE DATA {table.schema} {table.table} " in line for line in entries)
    ]


def check_archives(
    directory: Path, manifest: Manifest, *, bin_dir: Path | None, cancel: Cancellation | None
) -> list[str]:
    """Problems found listing each archive's table of contents with pg_restore --list."""
    pg_restore = str(find_tool("pg_restore", bin_dir))
    problems = []
    for database in manifest.databases:
        archive = directory / database.file
        try:
            listing = run_tool(
                [pg_restore, "--list", str(archive)],
                env=base_env(),
                what=f"list the archive of database {database.name}",
                cancel=cancel,
            ).stdout
        except Exception as exc:  # a ToolError (or an OS error reading the file) is a verification failure
            if cancel is not None:
                cancel.check()
            problems.append(f"{database.file}: {exc}")
            continue
        missing = missing_table_data(listing, database)
        if missing:
            more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            problems.append(f"{database.file}: no table data for {', '.join(missing[:MISSING_SHOWN])}{more}")
    return problems


def verify_set(
    directory: Path,
    manifest: Manifest,
    *,
    kind: str,
    bin_dir: Path | None,
    clock: Clock,
    cancel: Cancellation | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Verdict:
    """Run every check; the verdict (of check `kind`) says ok or lists what failed. It is not recorded here."""
    checks = ["checksums"]
    problems = check_checksums(directory, manifest, on_read)
    if not problems:
        checks.append("pg_restore --list")
        problems = check_archives(directory, manifest, bin_dir=bin_dir, cancel=cancel)
    if problems:
        logger.error("verification failed set=%s check=%s problems=%s", manifest.id, kind, "; ".join(problems))
        return Verdict(kind, False, clock.now(), tuple(checks), "; ".join(problems))
    logger.info("verified set=%s check=%s files=%d bytes=%d", manifest.id, kind, len(manifest.files), manifest.bytes)
    return Verdict(kind, True, clock.now(), tuple(checks))
