"""Fixtures of the backup tests: settings pointed at a native server, a shared verified set, a private
server for the tests that break things, a fake clock, and a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbackup.cancel import Cancellation
from pgbackup.catalog import BackupSet, scan
from pgbackup.clock import SystemClock
from pgbackup.config import Settings
from pgbackup.dump import take_backup
from pgbackup.files import free_bytes
from tests.fixtures.native_pg import BIN_DIR, SERVICE_USER, NativePostgres, start_native_postgres

EnvFactory = Callable[..., dict[str, str]]


class FakeClock:
    """A clock that moves only when told to: wall time for records, monotonic time for durations."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.ticks = 0.0

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, delta: timedelta) -> None:
        self.moment += delta
        self.ticks += delta.total_seconds()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))


def backup_env(
    server: NativePostgres, backup_dir: Path, role: str = "backup_operator", **overrides: str
) -> dict[str, str]:
    """BACKUP_* settings for `server` as `role`, writing to `backup_dir`; keyword overrides win."""
    env = {
        "BACKUP_PGHOST": server.host,
        "BACKUP_PGPORT": str(server.port),
        "BACKUP_PGUSER": role,
        "BACKUP_PGPASSWORD": server.passwords[role],
        "BACKUP_DIR": str(backup_dir),
        "BACKUP_DATABASES": "app",
        "BACKUP_PG_BIN_DIR": str(BIN_DIR),
        "BACKUP_MIN_FREE_BYTES": "1MiB",
        "BACKUP_STATUS_PORT": "0",
        "BACKUP_CONNECT_RETRY": "0",
        "BACKUP_LOG_LEVEL": "DEBUG",
    }
    if os.geteuid() == 0:  # PostgreSQL refuses root: the drill's server runs as the fixture's user
        env["BACKUP_DRILL_USER"] = SERVICE_USER
    env.update(overrides)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def make_env(pg: NativePostgres, tmp_path: Path) -> EnvFactory:
    """`make_env(role=..., **BACKUP_X=value)`: settings environment against the session server."""

    def factory(role: str = "backup_operator", **overrides: str) -> dict[str, str]:
        return backup_env(pg, tmp_path / "backups", role, **overrides)

    return factory


@pytest.fixture(scope="session")
def private_pg() -> Iterator[NativePostgres]:
    """A server of the backup tests' own, for faults the shared one must not see (stop, full slots, locks)."""
    server = start_native_postgres(demo_orders=200)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def shared_set_dir(pg: NativePostgres, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BACKUP_DIR holding one verified set of `app` and `postgres` from the session server; read only."""
    backup_dir = tmp_path_factory.mktemp("shared-backups")
    settings = settings_of(backup_env(pg, backup_dir, BACKUP_DATABASES="app,postgres"))
    take_backup(settings, clock=SystemClock(), cancel=Cancellation())
    return backup_dir


@pytest.fixture
def set_copy(shared_set_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shared BACKUP_DIR, for tests that corrupt or delete."""
    copy = tmp_path / "backups"
    shutil.copytree(shared_set_dir, copy)
    return copy


def only_set(settings: Settings) -> BackupSet:
    sets = scan(settings.sets_dir).sets
    assert len(sets) == 1, [backup_set.id for backup_set in sets]
    return sets[0]


def superuser_connect(server: NativePostgres, database: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(server.dsn("postgres", database), autocommit=True)


@dataclass
class WebhookReceiver:
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """An HTTP endpoint on 127.0.0.1 that records every JSON body POSTed to it."""
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches to
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.events.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # http.server's signature
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=secret"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _restore_umask() -> Iterator[None]:
    """pgbackup's main() sets the process umask (0o027) as a service should; in-process tests must not
    leak it to the tests that run after them."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


# -- small volumes (the tests run as root, as in CI: mount needs it) ------------------------------------------


@contextmanager
def tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `mountpoint` with `options`, unmounted afterwards."""
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the backups volume."""
    with tmpfs(tmp_path / "volume", "size=2m,mode=0755") as mountpoint:
        yield mountpoint


@pytest.fixture
def read_only_volume(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs mounted read-only: unwritable even for root, whom mode bits do not stop."""
    with tmpfs(tmp_path / "read-only", "ro,size=1m,mode=0755") as mountpoint:
        yield mountpoint


def fill(volume: Path, leave: int) -> None:
    """Write a ballast file until about `leave` bytes stay free (tmpfs counts whole pages)."""
    with (volume / "ballast").open("wb") as ballast:
        ballast.write(b"\0" * max(0, free_bytes(volume) - leave))
