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
from pgbackup.manifest import Manifest
from pgbackup.verify import verify_set
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
