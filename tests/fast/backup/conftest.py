"""Fixtures of the backup tests: settings pointed at a native server, a shared verified set, a private
server for the tests that break things, a fake clock, and a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools.native_pg import NativePostgres
from pgbackup.cancel import Cancellation
from pgbackup.clock import SystemClock
from pgbackup.dump import take_backup
from tests.fast.backup.helpers import EnvFactory, FakeClock, WebhookReceiver, backup_env, settings_of, tmpfs
from tests.fixtures.pg import native_pg_fixture


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))


@pytest.fixture
def make_env(pg: NativePostgres, tmp_path: Path) -> EnvFactory:
    """`make_env(role=..., **BACKUP_X=value)`: settings environment against the session server."""

    def factory(role: str = "backup_operator", **overrides: str) -> dict[str, str]:
        return backup_env(pg, tmp_path / "backups", role, **overrides)

    return factory


private_pg = native_pg_fixture(
    scope="session",
    demo_orders=200,
    doc="A server of the backup tests' own, for faults the shared one must not see (stop, full slots, locks).",
)


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
