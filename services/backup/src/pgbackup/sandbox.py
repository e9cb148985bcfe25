"""A throwaway PostgreSQL server for the restore drill: initdb into a private temporary directory,
listen on a Unix socket there only (no TCP), and remove everything on stop.

Its bootstrap superuser has the name of the source's (the globals then grant predefined roles "GRANTED BY"
a role that holds them). It runs as the current user, or, when pgbackup runs as root (PostgreSQL refuses root), as
BACKUP_DRILL_USER through `runuser`. Its superuser gets a random password that never leaves the
directory (mode 0700) and the children's environment.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from pgbackup.errors import ToolError
from pgbackup.pgtools import base_env, find_tool, local_env, run_tool
from pgbackup.target import APPLICATION_NAME

logger = logging.getLogger(__name__)

DEFAULT_SUPERUSER = "postgres"
PORT = 5432  # only names the socket file: the server listens on no TCP port
START_TIMEOUT = 120
# A restore-only server: enough memory for index builds, no background work competing with the restore.
SERVER_SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),
    "max_connections": "20",
    "shared_buffers": "128MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "autovacuum": "off",
    "logging_collector": "off",
    "timezone": "'UTC'",
}


class PrivateServer:
    """Start with `with PrivateServer(...) as server:`; `server.connect(db)` and `server.env(db)` reach it."""

    def __init__(
        self, *, bin_dir: Path | None, work_dir: Path | None, run_as: str | None, superuser: str = DEFAULT_SUPERUSER
    ) -> None:
        self.bin_dir = bin_dir
        self.superuser = superuser
        self.work_dir = work_dir
        self.run_as = run_as
        self.password = secrets.token_urlsafe(24)
        self.root: Path | None = None
        self._started = False

    @property
    def data_dir(self) -> Path:
        return self._root / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root / "run"

    @property
    def log_file(self) -> Path:
        return self._root / "server.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the private server is not started")
        return self.root

    def __enter__(self) -> PrivateServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _owner_ids(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        if not self.run_as:
            raise ToolError(
                "unable to start the drill's private PostgreSQL as root: PostgreSQL refuses to run as root",
                "run the drill as an unprivileged user (the restore-drill service runs as uid 999), "
                "or set BACKUP_DRILL_USER",
            )
        try:
            entry = pwd.getpwnam(self.run_as)
        except KeyError:
            raise ToolError(
                f"unable to run the drill's server as BACKUP_DRILL_USER={self.run_as}: no such user"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", str(self.run_as), "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> None:
        owner = self._owner_ids()
        self.root = Path(tempfile.mkdtemp(prefix="pgbackup-drill-", dir=self.work_dir))
        self.root.chmod(0o700)
        self.socket_dir.mkdir(mode=0o700)
        password_file = self.root / "superuser.pw"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if owner is not None:
            for path in (self.root, self.socket_dir, password_file):
                os.chown(path, *owner)
        initdb = str(find_tool("initdb", self.bin_dir))
        run_tool(
            self._as_owner(
                [
                    initdb,
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    self.superuser,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            env=base_env(),
            what="initialise the drill's private server (initdb)",
        )
        password_file.unlink()
        settings = dict(SERVER_SETTINGS, unix_socket_directories=f"'{self.socket_dir}'")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# pgbackup restore drill\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        pg_ctl = str(find_tool("pg_ctl", self.bin_dir))
        self._started = True
        run_tool(
            self._as_owner(
                [
                    pg_ctl,
                    "--pgdata",
                    str(self.data_dir),
                    "--log",
                    str(self.log_file),
                    "--wait",
                    f"--timeout={START_TIMEOUT}",
                    "start",
                ]
            ),
            env=base_env(),
            what="start the drill's private server (pg_ctl start)",
        )
        logger.info("drill server started socket=%s", self.socket_dir)

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove its directory."""
        if self.root is None:
            return
        if self._started:
            try:
                run_tool(
                    self._as_owner(
                        [
                            str(find_tool("pg_ctl", self.bin_dir)),
                            "--pgdata",
                            str(self.data_dir),
                            "--mode=immediate",
                            "--wait",
                            "stop",
                        ]
                    ),
                    env=base_env(),
                    what="stop the drill's private server",
                )
            except ToolError as exc:  # already stopped or never came up: the directory goes anyway
                logger.warning("unable to stop the drill server cleanly: %s", exc)
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-size:]
        except OSError:
            return "(no server log)"

    def connect(self, database: str) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=PORT,
            user=self.superuser,
            password=self.password,
            dbname=database,
            application_name=APPLICATION_NAME,
            options="-c TimeZone=UTC",
            autocommit=True,
        )

    def env(self, database: str) -> dict[str, str]:
        return local_env(self.socket_dir, PORT, self.superuser, self.password, database)
