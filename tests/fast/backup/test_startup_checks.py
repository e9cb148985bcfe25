"""Startup checks refuse with exit status 4 (5 when only the server is missing) and a message that says what
to do: a read-only backups volume
(for `backup` and `run`), less free space than BACKUP_MIN_FREE_BYTES, less than the last set's size plus
BACKUP_FREE_SPACE_MARGIN (also in the check before each backup), and a pg_dump older than the server
(found in BACKUP_PG_BIN_DIR or on PATH); nothing is written and earlier sets stay intact. A real set's
manifest records aware UTC start and end times, the duration between them, and one exported snapshot
per database."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.native_pg import BIN_DIR, NativePostgres
from pgbackup.__main__ import main
from pgbackup.checks import TOOLS, check_free_space
from pgbackup.errors import ExitCode
from pgbackup.files import free_bytes
from pgbackup.manifest import MANIFEST_NAME, Manifest
from pgbackup.state import read_state
from tests.fast.backup.helpers import EnvFactory, backup_env, fill, only_set, settings_of, tmpfs

SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+-[0-9]+$")  # what pg_export_snapshot() returns
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")  # how pgbackup writes a timestamp
OLD_VERSION = "17.2"
SHIM = """#!/bin/sh
if [ "$1" = "--version" ]; then
    echo "{name} (PostgreSQL) {version}"
    exit 0
fi
echo "{name}: a version shim of the tests, not a PostgreSQL client" >&2
exit 1
"""


def shim_bin_dir(directory: Path, old: Sequence[str]) -> Path:
    """A bin directory where the tools named in `old` are scripts claiming PostgreSQL 17.2 and the other
    client tools are links to the real PostgreSQL 18 ones."""
    directory.mkdir()
    for name in TOOLS:
        tool = directory / name
        if name in old:
            tool.write_text(SHIM.format(name=name, version=OLD_VERSION))
            tool.chmod(0o755)
        else:
            tool.symlink_to(BIN_DIR / name)
    return directory


def startup_problems(stderr: str, command: str = "backup") -> list[str]:
    """The problems a refused start listed on stderr, each "what" plus its "\nhint: ..." lines, or an empty
    list if it did not refuse."""
    header = f"pgbackup {command}: error: startup checks failed:"
    lines = stderr.splitlines()
    if header not in lines:
        return []
    problems: list[str] = []
    for line in lines[lines.index(header) + 1 :]:
        if line.startswith("  - "):
            problems.append(line.removeprefix("  - "))
        elif line.startswith("    ") and problems:
            problems[-1] += "\n" + line.strip()
    return problems


def server_version_of(superuser: psycopg.Connection[Any]) -> str:
    row = superuser.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("command", ["backup", "run"])
@pytest.mark.parametrize("below", ["", "backups"], ids=["the-mount", "a-new-directory-in-it"])
def test_a_read_only_backups_directory_is_refused_at_startup(
    pg: NativePostgres, read_only_volume: Path, command: str, below: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backup_dir = read_only_volume / below
    env = backup_env(pg, backup_dir)
    assert main([command], environ=env) == ExitCode.STARTUP
    output = capsys.readouterr()
    assert startup_problems(output.err, command) == [
        f"unable to write to BACKUP_DIR={backup_dir}: Read-only file system\n"
        f"hint: mount a writable volume there, owned by uid {os.geteuid()}"
    ]
    assert "backup started" not in output.out and "backup loop" not in output.out
    assert list(read_only_volume.iterdir()) == []


def test_an_unwritable_sets_directory_is_refused_at_startup(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BACKUP_DIR is writable but the sets/ below it is not (left by a run as another user): refused at
    startup with a message naming sets/, not failed later in the middle of a backup."""
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    with tmpfs(backup_dir / "sets", "ro,size=1m,mode=0755") as sets_dir:
        assert main(["backup"], environ=backup_env(pg, backup_dir)) == ExitCode.STARTUP
        output = capsys.readouterr()
        assert startup_problems(output.err) == [
            f"unable to write to BACKUP_DIR/sets={sets_dir}: Read-only file system\n"
            f"hint: mount a writable volume there, owned by uid {os.geteuid()}"
        ]
        assert "backup started" not in output.out
        # past the startup checks, the backup itself fails with the same advice and leaves nothing behind
        assert main(["backup", "--skip-checks"], environ=backup_env(pg, backup_dir)) == ExitCode.BACKUP
        err = capsys.readouterr().err
        assert f"unable to create the backup set directory {sets_dir}/" in err and "BACKUP_DIR/sets" in err, err
        assert list(sets_dir.iterdir()) == []


def test_less_free_space_than_the_floor_is_refused_at_startup(
    pg: NativePostgres, small_volume: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = backup_env(pg, small_volume, BACKUP_DATABASES="postgres", BACKUP_MIN_FREE_BYTES="4MiB")
    assert main(["backup"], environ=env) == ExitCode.STARTUP
    output = capsys.readouterr()
    assert startup_problems(output.err) == [
        f"not enough free space in BACKUP_DIR={small_volume}: {free_bytes(small_volume)} bytes free, the next set "
        f"needs {4 * 1024**2} (last set + 20%, at least BACKUP_MIN_FREE_BYTES)\n"
        "hint: free space, lower BACKUP_KEEP_* and run `python -m pgbackup prune`, or grow the volume"
    ]
    assert "backup started" not in output.out
    assert [path.name for path in small_volume.iterdir()] == ["sets"], "only the directory check's sets/"
    assert list((small_volume / "sets").iterdir()) == []


def test_the_last_set_plus_the_margin_must_fit(
    pg: NativePostgres, small_volume: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The volume holds the last set's size, but not that plus 1000%: refused at startup and before the
    backup itself (--skip-checks); the earlier set stays intact."""
    env = backup_env(
        pg, small_volume, BACKUP_DATABASES="postgres", BACKUP_MIN_FREE_BYTES="0", BACKUP_FREE_SPACE_MARGIN="0"
    )
    assert main(["backup"], environ=env) == ExitCode.OK
    first = only_set(settings_of(env))
    last = first.manifest.bytes
    fill(small_volume, leave=5 * last)
    free = free_bytes(small_volume)
    assert last < free < 11 * last
    assert check_free_space(settings_of(env)) == [], "without the margin the next set fits"

    with_margin = dict(env, BACKUP_FREE_SPACE_MARGIN="1000")
    expected_what = (
        f"not enough free space in BACKUP_DIR={small_volume}: {free} bytes free, the next set needs {11 * last} "
        "(last set + 1000%, at least BACKUP_MIN_FREE_BYTES)"
    )
    expected = (
        f"{expected_what}\nhint: free space, lower BACKUP_KEEP_* and run `python -m pgbackup prune`, or grow the volume"
    )
    capsys.readouterr()
    assert main(["backup"], environ=with_margin) == ExitCode.STARTUP
    assert startup_problems(capsys.readouterr().err) == [expected]

    assert main(["backup", "--skip-checks"], environ=with_margin) == ExitCode.BACKUP
    assert f"pgbackup backup: error: {expected}" in capsys.readouterr().err
    settings = settings_of(with_margin)
    state = read_state(settings.state_file)
    assert state is not None and state.last_outcome == "failure" and state.last_error == expected_what
    assert state.successes_total == 1 and state.last_success_set == first.id

    assert [path.name for path in settings.sets_dir.iterdir()] == [first.id]
    assert only_set(settings).manifest == first.manifest
    assert main(["verify"], environ=env) == ExitCode.OK


@pytest.mark.parametrize("found_in", ["BACKUP_PG_BIN_DIR", "PATH"])
def test_a_pg_dump_older_than_the_server_is_refused(
    make_env: EnvFactory,
    superuser: psycopg.Connection[Any],
    tmp_path: Path,
    found_in: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every client tool claims 17.2, so only the server check fails; --skip-checks fails in the dump."""
    shims = shim_bin_dir(tmp_path / "bin", old=TOOLS)
    if found_in == "PATH":
        monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
        env = make_env(BACKUP_PG_BIN_DIR="")
    else:
        env = make_env(BACKUP_PG_BIN_DIR=str(shims))
    server_version = server_version_of(superuser)
    assert server_version.startswith("18.")

    assert main(["backup"], environ=env) == ExitCode.STARTUP
    assert startup_problems(capsys.readouterr().err) == [
        f"pg_dump 17 cannot dump the PostgreSQL {server_version} server\n"
        "hint: use the client tools of major 18 or newer (build the backup image FROM the server's postgres image)"
    ]
    settings = settings_of(env)
    assert list(settings.sets_dir.iterdir()) == [] and not settings.state_file.exists()

    assert main(["backup", "--skip-checks"], environ=env) == ExitCode.BACKUP
    assert (
        f"unable to dump a PostgreSQL {server_version} server with pg_dump (PostgreSQL) {OLD_VERSION}"
        in capsys.readouterr().err
    )
    assert list(settings.sets_dir.iterdir()) == [], "the partial set is removed"


def test_client_tools_of_mixed_versions_are_reported_with_the_old_pg_dump(
    make_env: EnvFactory, superuser: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only pg_dump is 17: both problems are listed together, in one refusal."""
    env = make_env(BACKUP_PG_BIN_DIR=str(shim_bin_dir(tmp_path / "bin", old=["pg_dump"])))
    assert main(["backup"], environ=env) == ExitCode.STARTUP
    assert startup_problems(capsys.readouterr().err) == [
        "the client tools are of different major versions (pg_dump 17, pg_dumpall 18, pg_restore 18)\n"
        "hint: install one PostgreSQL client",
        f"pg_dump 17 cannot dump the PostgreSQL {server_version_of(superuser)} server\n"
        "hint: use the client tools of major 18 or newer (build the backup image FROM the server's postgres image)",
    ]
    assert list(settings_of(env).sets_dir.iterdir()) == []


def test_the_manifest_records_start_end_duration_and_snapshots(shared_set_dir: Path) -> None:
    [directory] = list((shared_set_dir / "sets").iterdir())
    raw = json.loads((directory / MANIFEST_NAME).read_text())
    manifest = Manifest.read(directory)
    assert ISO_UTC.match(raw["started_at"]) and ISO_UTC.match(raw["finished_at"]), raw
    started, finished = manifest.started_at, manifest.finished_at
    assert started.utcoffset() == timedelta(0) and finished.utcoffset() == timedelta(0)
    assert started < finished
    assert raw["duration_seconds"] == round((finished - started).total_seconds(), 3) > 0
    assert manifest.duration_seconds == (finished - started).total_seconds()
    assert manifest.id == directory.name
    assert datetime.strptime(manifest.id, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) <= started, "id: the UTC start"

    assert [database.name for database in manifest.databases] == ["app", "postgres"]
    for database, written in zip(manifest.databases, raw["databases"], strict=True):
        assert SNAPSHOT_ID.match(database.snapshot), database.snapshot
        assert ISO_UTC.match(written["snapshot_at"]), written["snapshot_at"]
        assert started <= database.snapshot_at <= finished, database.name
    assert len({database.snapshot for database in manifest.databases}) == 2, "one snapshot per database"
    assert manifest.snapshot_at == min(database.snapshot_at for database in manifest.databases)


def test_the_backup_command_reports_and_records_the_manifest_times(
    make_env: EnvFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env()
    assert main(["backup"], environ=env) == ExitCode.OK
    settings = settings_of(env)
    manifest = only_set(settings).manifest
    assert (
        f"backup set {manifest.id}: verified, {manifest.bytes} bytes in {manifest.duration_seconds:.1f} s, "
        "databases app"
    ) in capsys.readouterr().out
    state = read_state(settings.state_file)
    assert state is not None
    assert (state.last_attempt_at, state.last_success_at) == (manifest.started_at, manifest.finished_at)
