"""Where the drill's private server keeps its data: the restored-size estimate from a real set's manifest, the
memory-or-disk choice against BACKUP_DRILL_MEMORY_BUDGET and BACKUP_DRILL_SCRATCH, the refusals that name their
fix, the settings' validation, and a real drill forced onto a disk scratch directory."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pgbackup.__main__ import main
from pgbackup.errors import ConfigError, ExitCode, ToolError
from pgbackup.manifest import Manifest
from pgbackup.scratch import CLUSTER_BYTES, DUMP_FACTOR, WAL_BYTES_LIMIT, choose_scratch, estimate_restored_bytes
from tests.fast.backup.helpers import EnvFactory, only_set, settings_of


@pytest.fixture
def manifest(make_env: EnvFactory, set_copy: Path) -> Manifest:
    return only_set(settings_of(make_env(BACKUP_DIR=str(set_copy)))).manifest


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A scratch directory the drill's unprivileged server user can reach (pytest's tmp_path is root's, 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="pgbackup-test-scratch-", dir="/tmp"))
    directory.chmod(0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_the_estimate_is_the_database_sizes_recorded_at_dump_time_plus_wal(manifest: Manifest) -> None:
    sizes = [database.size_bytes for database in manifest.databases]
    assert all(size is not None and size > 1 << 20 for size in sizes), "the dump records pg_database_size"
    data = sum(size for size in sizes if size is not None)
    estimate = estimate_restored_bytes(manifest)
    assert estimate.bytes == 2 * data + CLUSTER_BYTES
    assert estimate.basis.startswith("database sizes at dump time")


def test_a_set_without_recorded_sizes_is_estimated_from_its_dump_files(manifest: Manifest) -> None:
    older = replace(manifest, databases=tuple(replace(database, size_bytes=None) for database in manifest.databases))
    estimate = estimate_restored_bytes(older)
    assert estimate.bytes == 2 * DUMP_FACTOR * manifest.bytes + CLUSTER_BYTES
    assert f"{DUMP_FACTOR} x the dump files" in estimate.basis


def test_the_wal_allowance_stops_at_max_wal_size(manifest: Manifest) -> None:
    huge = replace(manifest, databases=tuple(replace(database, size_bytes=10 << 30) for database in manifest.databases))
    data = (10 << 30) * len(manifest.databases)
    assert estimate_restored_bytes(huge).bytes == data + WAL_BYTES_LIMIT + CLUSTER_BYTES


def test_auto_keeps_a_set_that_fits_the_budget_in_memory(make_env: EnvFactory, manifest: Manifest) -> None:
    scratch = choose_scratch(settings_of(make_env()), manifest)
    assert scratch.kind == "memory" and scratch.directory == Path(tempfile.gettempdir())
    assert scratch.budget_bytes == 4 << 30 and "fits the memory budget of 4.0 GiB" in scratch.reason


def test_auto_sends_a_set_over_the_budget_to_disk(make_env: EnvFactory, manifest: Manifest, disk_dir: Path) -> None:
    settings = settings_of(make_env(BACKUP_DRILL_MEMORY_BUDGET="1MiB", BACKUP_DRILL_DISK_DIR=str(disk_dir)))
    scratch = choose_scratch(settings, manifest)
    assert scratch.kind == "disk" and scratch.directory == disk_dir
    assert "is over the memory budget of 1.0 MiB" in scratch.reason
    assert scratch.to_dict()["estimated_bytes"] == estimate_restored_bytes(manifest).bytes


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_a_forced_mode_wins_over_the_estimate(
    make_env: EnvFactory, manifest: Manifest, disk_dir: Path, mode: str
) -> None:
    budget = "1MiB" if mode == "memory" else "1TiB"
    settings = settings_of(
        make_env(BACKUP_DRILL_SCRATCH=mode, BACKUP_DRILL_MEMORY_BUDGET=budget, BACKUP_DRILL_DISK_DIR=str(disk_dir))
    )
    scratch = choose_scratch(settings, manifest)
    assert scratch.kind == mode and scratch.reason == f"BACKUP_DRILL_SCRATCH={mode}"


def test_disk_without_a_disk_directory_names_the_fix(make_env: EnvFactory, manifest: Manifest) -> None:
    with pytest.raises(ToolError) as raised:
        choose_scratch(settings_of(make_env(BACKUP_DRILL_MEMORY_BUDGET="1MiB")), manifest)
    text = str(raised.value)
    assert "BACKUP_DRILL_DISK_DIR names no disk-backed scratch directory" in text
    assert "hint: run `make restore-drill`" in text and "BACKUP_DRILL_MEMORY_BUDGET (now 1MiB)" in text


def test_an_unwritable_disk_directory_is_refused(
    make_env: EnvFactory, manifest: Manifest, read_only_volume: Path
) -> None:
    settings = settings_of(make_env(BACKUP_DRILL_SCRATCH="disk", BACKUP_DRILL_DISK_DIR=str(read_only_volume)))
    with pytest.raises(ToolError, match="is not writable"):
        choose_scratch(settings, manifest)


def test_a_disk_directory_without_room_for_the_estimate_is_refused(
    make_env: EnvFactory, manifest: Manifest, small_volume: Path
) -> None:
    settings = settings_of(make_env(BACKUP_DRILL_SCRATCH="disk", BACKUP_DRILL_DISK_DIR=str(small_volume)))
    with pytest.raises(ToolError) as raised:
        choose_scratch(settings, manifest)
    assert f"{small_volume} has 2.0 MiB free, the restore needs about" in str(raised.value)
    assert "hint: give BACKUP_DRILL_DISK_DIR more room" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("BACKUP_DRILL_SCRATCH", "tmpfs", "must be one of auto, memory, disk"),
        ("BACKUP_DRILL_MEMORY_BUDGET", "4GB", "not a size in IEC units\n    hint: write GiB"),
        ("BACKUP_DRILL_MEMORY_BUDGET", "512KiB", "is below the minimum of 1048576 bytes"),
        ("BACKUP_DRILL_DISK_DIR", "scratch", "not an absolute path"),
    ],
)
def test_drill_scratch_settings_are_validated(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_of({name: value})
    assert f"{name}={value!r} is invalid: {problem}" in str(raised.value)


def test_a_drill_forced_to_disk_restores_there_measures_rto_and_leaves_nothing(
    make_env: EnvFactory, set_copy: Path, disk_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(BACKUP_DIR=str(set_copy), BACKUP_DRILL_SCRATCH="disk", BACKUP_DRILL_DISK_DIR=str(disk_dir))
    assert main(["drill"], environ=env) == ExitCode.OK
    [path] = (set_copy / "drills").glob("*.json")
    report = json.loads(path.read_text())
    assert report["passed"] is True and 0 < report["rto_seconds"] < report["max_rto_seconds"]
    assert report["scratch"]["kind"] == "disk" and report["scratch"]["directory"] == str(disk_dir)
    assert report["scratch"]["reason"] == "BACKUP_DRILL_SCRATCH=disk"
    assert f"scratch: disk ({disk_dir})" in capsys.readouterr().out
    assert os.listdir(disk_dir) == [], "the private server's directory must be gone"
    assert main(["status"], environ=env) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["last_drill"]["scratch"] == "disk"
