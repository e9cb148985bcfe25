"""The verification of one set (`pgbackup.verify.verify_set`), pinned exactly: which checks ran, in which order,
what the verdict and the log say, and that an archive is listed even when every checksum matches. Done on copies of
a real set taken from the session server; `make mutate` holds these to account."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools.native_pg import BIN_DIR
from pgbackup.cancel import Cancellation
from pgbackup.catalog import BackupSet, scan
from pgbackup.errors import AbortedError
from pgbackup.files import sha256_file
from pgbackup.manifest import Manifest, TableCount
from pgbackup.verify import check_archives, check_checksums, missing_table_data, verify_set
from tests.fast.backup.helpers import FakeClock
from tests.fast.backup.test_scrub import flip_byte

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
BOTH_CHECKS = ("checksums", "pg_restore --list")


def the_set(backups: Path) -> BackupSet:
    (backup_set,) = scan(backups / "sets").sets
    return backup_set


def bin_dir() -> Path:
    """The PostgreSQL 18 client tools the session server's dumps were taken with."""
    return BIN_DIR


def rewrite_checksum(backup_set: BackupSet, name: str) -> Manifest:
    """The manifest re-written with `name`'s current size and sha256: its checksum check passes whatever the
    file holds now (a set damaged before its manifest was written)."""
    path = backup_set.path / name
    files = tuple(
        dataclasses.replace(entry, bytes=path.stat().st_size, sha256=sha256_file(path)) if entry.name == name else entry
        for entry in backup_set.manifest.files
    )
    manifest = dataclasses.replace(backup_set.manifest, files=files)
    manifest.write(backup_set.path)
    return manifest


def test_a_good_set_passes_both_checks_and_says_so(set_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    backup_set = the_set(set_copy)
    manifest = backup_set.manifest
    with caplog.at_level(logging.INFO, logger="pgbackup.verify"):
        verdict = verify_set(backup_set.path, manifest, kind="scrub", bin_dir=bin_dir(), clock=FakeClock(NOW))
    assert (verdict.kind, verdict.ok, verdict.at, verdict.checks, verdict.error) == (
        "scrub",
        True,
        NOW,
        BOTH_CHECKS,
        None,
    )
    assert caplog.messages == [
        f"verified set={manifest.id} check=scrub files={len(manifest.files)} bytes={manifest.bytes}"
    ]


def test_an_archive_is_listed_even_when_every_checksum_matches(
    set_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An archive cut inside its table of contents, whose manifest entry matches it: only pg_restore --list can
    find it."""
    backup_set = the_set(set_copy)
    archive = backup_set.path / "db-app.dump"
    archive.write_bytes(archive.read_bytes()[:200])
    manifest = rewrite_checksum(backup_set, "db-app.dump")
    with caplog.at_level(logging.INFO, logger="pgbackup.verify"):
        verdict = verify_set(backup_set.path, manifest, kind="backup", bin_dir=bin_dir(), clock=FakeClock(NOW))
    assert (verdict.kind, verdict.ok, verdict.at, verdict.checks) == ("backup", False, NOW, BOTH_CHECKS)
    assert verdict.error is not None and verdict.error.startswith("db-app.dump: "), verdict.error
    assert caplog.messages == [f"verification failed set={manifest.id} check=backup problems={verdict.error}"]


def test_every_problem_is_in_the_verdict_and_the_listing_waits_for_the_checksums(
    set_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two damaged files: both named, in the manifest's order, joined by "; "; pg_restore never ran on a set whose
    checksums fail (its checks name only the first)."""
    backup_set = the_set(set_copy)
    (backup_set.path / "globals.sql").unlink()
    flip_byte(backup_set.path / "db-app.dump")
    manifest = backup_set.manifest
    with caplog.at_level(logging.INFO, logger="pgbackup.verify"):
        verdict = verify_set(backup_set.path, manifest, kind="scrub", bin_dir=bin_dir(), clock=FakeClock(NOW))
    problems = verdict.error.split("; ") if verdict.error else []
    by_file = {problem.partition(":")[0]: problem for problem in problems}
    order = [entry.name for entry in manifest.files if entry.name in by_file]
    assert (verdict.ok, verdict.checks, [problem.partition(":")[0] for problem in problems]) == (
        False,
        ("checksums",),
        order,
    )
    assert by_file["globals.sql"] == "globals.sql: missing"
    assert by_file["db-app.dump"].startswith("db-app.dump: sha256 ")
    assert caplog.messages == [f"verification failed set={manifest.id} check=scrub problems={verdict.error}"]


def test_a_stop_request_ends_the_listing(set_copy: Path) -> None:
    """pg_restore runs under the run's cancellation: a SIGTERM'd sidecar stops verifying instead of finishing."""
    backup_set = the_set(set_copy)
    cancel = Cancellation()
    cancel.cancel("SIGTERM")
    with pytest.raises(AbortedError):
        verify_set(
            backup_set.path, backup_set.manifest, kind="scrub", bin_dir=bin_dir(), clock=FakeClock(NOW), cancel=cancel
        )


def test_a_missing_or_resized_file_does_not_end_the_checksum_check(set_copy: Path) -> None:
    """The first file of the manifest one byte short, the second gone and the last one damaged: all three are
    named, in order, each with what is wrong."""
    backup_set = the_set(set_copy)
    files = backup_set.manifest.files
    assert len(files) >= 3 and files[-1].bytes > 0, files
    first, second, last = files[0], files[1], files[-1]
    short = backup_set.path / first.name
    short.write_bytes(short.read_bytes()[:-1])
    (backup_set.path / second.name).unlink()
    flip_byte(backup_set.path / last.name)
    problems = check_checksums(backup_set.path, backup_set.manifest)
    assert problems[:2] == [
        f"{first.name}: {first.bytes - 1} bytes on disk, {first.bytes} in the manifest",
        f"{second.name}: missing",
    ]
    assert len(problems) == 3 and problems[2].startswith(f"{last.name}: sha256 "), problems
    assert problems[2].endswith(f", {last.sha256} in the manifest")


def test_every_archive_is_listed_and_the_tables_without_data_are_named(set_copy: Path) -> None:
    """The first database's archive cannot be listed, and the last one's manifest counts tables its archive holds
    no data for: both problems are reported, the tables by name (the first ten, then how many more)."""
    backup_set = the_set(set_copy)
    first, last = backup_set.manifest.databases[0], backup_set.manifest.databases[-1]
    assert first.name != last.name
    archive = backup_set.path / first.file
    archive.write_bytes(archive.read_bytes()[:200])
    shown = ", ".join(f"shop.ghost_{number:02}" for number in range(10))
    for ghosts, tail in ((12, " and 2 more"), (10, "")):
        extra = tuple(TableCount("shop", f"ghost_{number:02}", 1) for number in range(ghosts))
        databases = tuple(
            dataclasses.replace(database, tables=(*database.tables, *extra)) if database.name == last.name else database
            for database in backup_set.manifest.databases
        )
        manifest = dataclasses.replace(backup_set.manifest, databases=databases)
        problems = check_archives(backup_set.path, manifest, bin_dir=bin_dir(), cancel=None)
        assert len(problems) == 2, problems
        assert problems[0].startswith(f"{first.file}: unable to list the archive of database {first.name}: ")
        assert problems[1] == f"{last.file}: no table data for {shown}{tail}"


def test_comment_lines_of_a_listing_are_not_entries(set_copy: Path) -> None:
    """pg_restore --list's `;` lines are comments: a table named only there has no data in the archive."""
    database = dataclasses.replace(
        the_set(set_copy).manifest.database("app"),
        tables=(TableCount("shop", "orders", 5), TableCount("shop", "customers", 2)),
    )
    listing = (
        ";\n; Archive created at 2026-12-04 12:00:00 UTC\n;     3409; 0 16390 TABLE DATA shop orders app_owner\n\n"
        "3410; 0 16391 TABLE DATA shop customers app_owner\n"
    )
    assert missing_table_data(listing, database) == ["shop.orders"]
    assert missing_table_data(listing.replace(";     3409", "3409"), database) == []
