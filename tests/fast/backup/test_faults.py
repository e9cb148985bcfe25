"""Faults: a backup killed or stopped mid-dump, overlapping runs, the database down during a scheduled
run, a full backups volume, and every ordinary connection slot taken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from devtools.paths import REPO
from pgbackup.__main__ import main
from pgbackup.cancel import Cancellation
from pgbackup.catalog import scan
from pgbackup.clock import SystemClock
from pgbackup.errors import ExitCode
from pgbackup.loop import BackupLoop
from pgbackup.state import read_state
from tests.fast.backup.helpers import (
    FakeClock,
    WebhookReceiver,
    backup_env,
    fill,
    only_set,
    settings_of,
    superuser_connect,
)
from tests.helpers import wait_until

BLOCKED_DB = "backup_blocked"


@contextmanager
def locked_table(server: NativePostgres) -> Iterator[psycopg.Connection[Any]]:
    """A database whose only table is locked ACCESS EXCLUSIVE: a backup of it stops mid-dump, waiting."""
    with superuser_connect(server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BLOCKED_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BLOCKED_DB}")
        conn.execute(f"GRANT CONNECT ON DATABASE {BLOCKED_DB} TO backup_operator")
    with superuser_connect(server, BLOCKED_DB) as conn:
        conn.execute("CREATE TABLE ledger AS SELECT generate_series(1, 1000) AS id")
    holder = psycopg.connect(server.dsn("postgres", BLOCKED_DB))
    holder.execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
    try:
        yield holder
    finally:
        holder.close()
        with superuser_connect(server) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BLOCKED_DB} WITH (FORCE)")


def dump_waits_on_the_lock(server: NativePostgres) -> bool:
    with superuser_connect(server) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE%%'",
            (BLOCKED_DB,),
        ).fetchone()
    return bool(row and row[0])


def backends_left(server: NativePostgres) -> int:
    with superuser_connect(server) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'pgbackup'", (BLOCKED_DB,)
        ).fetchone()
    return int(row[0]) if row else 0


def start_backup(env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m pgbackup backup` in its own process group (a container: kill the group, kill it all)."""
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("BACKUP_")}
    child_env.update(env, PYTHONPATH=str(REPO / "services" / "backup" / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "pgbackup", "backup", "--skip-checks"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_mid_dump_leaves_no_complete_looking_set(private_pg: NativePostgres, tmp_path: Path) -> None:
    env = backup_env(private_pg, tmp_path / "backups", BACKUP_DATABASES=BLOCKED_DB)
    settings = settings_of(env)
    with locked_table(private_pg) as holder:
        process = start_backup(env)
        try:
            wait_until(
                lambda: dump_waits_on_the_lock(private_pg),
                timeout=60,
                what="pg_dump waiting on the locked table",
                describe=lambda: str(process.poll()),
            )
            [partial] = list(settings.sets_dir.iterdir())
            assert partial.name.endswith(".partial")
            assert sorted(path.name for path in partial.iterdir()) == ["db-backup_blocked.dump.partial", "globals.sql"]
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)
        holder.rollback()
        catalog = scan(settings.sets_dir)
        assert catalog.sets == () and catalog.leftovers == (partial,)
        assert main(["backup"], environ=env) == ExitCode.OK
    backup_set = only_set(settings)
    assert sorted(path.name for path in settings.sets_dir.iterdir()) == [backup_set.id], "the leftover is removed"
    assert backup_set.verified and backup_set.manifest.database(BLOCKED_DB).tables[0].rows == 1000


def test_sigterm_mid_dump_aborts_and_removes_partial_files(private_pg: NativePostgres, tmp_path: Path) -> None:
    env = backup_env(private_pg, tmp_path / "backups", BACKUP_DATABASES=BLOCKED_DB)
    settings = settings_of(env)
    with locked_table(private_pg) as holder:
        process = start_backup(env)
        try:
            wait_until(
                lambda: dump_waits_on_the_lock(private_pg),
                timeout=60,
                what="pg_dump waiting on the locked table",
                describe=lambda: str(process.poll()),
            )
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate(timeout=60)
        assert process.returncode == ExitCode.ABORTED, stderr
        assert "aborted (SIGTERM)" in stderr
        assert list(settings.sets_dir.iterdir()) == []
        state = read_state(settings.state_file)
        assert state is not None and state.last_outcome == "aborted" and state.failures_total == 0
        holder.rollback()
        wait_until(
            lambda: backends_left(private_pg) == 0,
            timeout=60,
            what="the aborted run's backends to end",
            describe=lambda: f"{backends_left(private_pg)} left",
        )


def test_runs_never_overlap(private_pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = backup_env(private_pg, tmp_path / "backups", BACKUP_DATABASES=BLOCKED_DB)
    with locked_table(private_pg):
        process = start_backup(env)
        try:
            wait_until(lambda: dump_waits_on_the_lock(private_pg), timeout=60, what="the first run to be mid-dump")
            assert main(["backup", "--skip-checks"], environ=env) == ExitCode.LOCKED
            assert f"(pid {process.pid})" in capsys.readouterr().err
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


def test_database_down_during_a_scheduled_run(
    private_pg: NativePostgres, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    """The failure is recorded and reported, the loop goes on, and the next run works."""
    env = backup_env(private_pg, tmp_path / "backups", BACKUP_WEBHOOK_URL=webhook.url, BACKUP_LOG_LEVEL="INFO")
    settings = settings_of(env)
    loop = BackupLoop(settings, clock=SystemClock(), cancel=Cancellation())
    loop.scheduler.run_all()
    private_pg.stop()
    try:
        loop.scheduler.run_all()
        state = read_state(settings.state_file)
        assert state is not None and state.last_outcome == "failure" and state.consecutive_failures == 1
        assert state.last_error is not None and "unable to connect to 127.0.0.1:" in state.last_error
        assert "nothing accepts connections there (connection refused)" in state.last_error
        assert [event["event"] for event in webhook.events] == ["backup_failed"]
        assert webhook.events[0]["consecutive_failures"] == 1
    finally:
        private_pg.restart()
    loop.scheduler.run_all()
    state = read_state(settings.state_file)
    assert state is not None and state.last_outcome == "success" and state.consecutive_failures == 0
    assert (state.successes_total, state.failures_total) == (2, 1)
    assert (loop.runs, loop.failures) == (3, 1)
    assert len(scan(settings.sets_dir).sets) == 2


def test_a_job_exception_never_kills_the_loop(
    private_pg: NativePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(backup_env(private_pg, tmp_path / "backups"))
    loop = BackupLoop(settings, clock=SystemClock(), cancel=Cancellation())

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("pgbackup.runner.take_backup", explode)
    loop.scheduler.run_all()
    state = read_state(settings.state_file)
    assert state is not None and state.last_error == "unable to take a backup: RuntimeError: boom"
    monkeypatch.undo()
    loop.scheduler.run_all()
    assert (loop.runs, loop.failures) == (2, 1)
    assert len(scan(settings.sets_dir).sets) == 1


def test_full_volume_before_the_run_fails_cleanly_and_is_unhealthy(
    private_pg: NativePostgres, small_volume: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = backup_env(private_pg, small_volume, BACKUP_MIN_FREE_BYTES="0", BACKUP_FREE_SPACE_MARGIN="0")
    assert main(["backup"], environ=env) == ExitCode.OK
    first = only_set(settings_of(env))
    assert main(["healthcheck"], environ=env) == ExitCode.OK
    fill(small_volume, leave=first.manifest.bytes // 2)
    capsys.readouterr()
    assert main(["backup", "--skip-checks"], environ=env) == ExitCode.BACKUP
    assert "not enough free space in BACKUP_DIR" in capsys.readouterr().err
    assert main(["healthcheck"], environ=env) == ExitCode.UNHEALTHY
    assert "the next set needs" in capsys.readouterr().out
    assert [path.name for path in (small_volume / "sets").iterdir()] == [first.id]
    assert main(["verify"], environ=env) == ExitCode.OK


def test_volume_filling_up_mid_dump_fails_cleanly(private_pg: NativePostgres, small_volume: Path) -> None:
    """pg_dump hits ENOSPC: the partial set goes, earlier sets stay intact, the failure is recorded, and
    the health check turns unhealthy once the schedule passes without a new set."""
    tiny = backup_env(
        private_pg, small_volume, BACKUP_DATABASES="postgres", BACKUP_MIN_FREE_BYTES="0", BACKUP_FREE_SPACE_MARGIN="0"
    )
    assert main(["backup"], environ=tiny) == ExitCode.OK
    first = only_set(settings_of(tiny))
    fill(small_volume, leave=first.manifest.bytes * 4)
    bigger = dict(tiny, BACKUP_DATABASES="app")
    assert main(["backup", "--skip-checks"], environ=bigger) == ExitCode.BACKUP
    settings = settings_of(bigger)
    assert [path.name for path in settings.sets_dir.iterdir()] == [first.id]
    state = read_state(settings.state_file)
    assert state is not None and state.last_outcome == "failure"
    assert state.last_error is not None and "No space left on device" in state.last_error
    assert main(["verify"], environ=tiny) == ExitCode.OK
    clock = FakeClock(first.snapshot_at)
    assert main(["healthcheck"], environ=tiny, clock=clock) == ExitCode.OK
    clock.advance(timedelta(seconds=settings.max_backup_age + 1))
    assert main(["healthcheck"], environ=tiny, clock=clock) == ExitCode.UNHEALTHY


def test_backup_runs_when_ordinary_clients_hold_every_slot(private_pg: NativePostgres, tmp_path: Path) -> None:
    """backup_operator is in pg_use_reserved_connections: it gets in when app_owner no longer can."""
    clients: list[psycopg.Connection[Any]] = []
    with ExitStack() as held:
        with pytest.raises(psycopg.OperationalError, match="remaining connection slots are reserved"):
            for _ in range(200):
                clients.append(held.enter_context(psycopg.connect(private_pg.dsn("app_owner"))))
        assert len(clients) > 40, "the ordinary slots are what the clients hold"
        env = backup_env(private_pg, tmp_path / "backups")
        assert main(["backup"], environ=env) == ExitCode.OK
    assert only_set(settings_of(env)).verified
