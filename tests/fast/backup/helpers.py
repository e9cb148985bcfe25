"""Helpers of the backup tests (the fixtures are in conftest.py): settings for a native server (split or as one
BACKUP_DATABASE_URL), a fake clock, fake backup sets on disk, a webhook receiver's record, small tmpfs volumes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import make_conninfo

from devtools.backup_env import backup_environment
from devtools.native_pg import NativePostgres
from pgbackup.catalog import BackupSet, scan
from pgbackup.config import SPECS, Settings
from pgbackup.files import free_bytes
from pgbackup.manifest import Database, FileEntry, Manifest, Verdict, Verification

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


def backup_env(
    server: NativePostgres, backup_dir: Path, role: str = "backup_operator", **overrides: str
) -> dict[str, str]:
    """BACKUP_* settings for `server` as `role`, writing to `backup_dir`, with no status port, no connection
    retries and debug logs; keyword overrides win."""
    quiet = {"BACKUP_STATUS_PORT": "0", "BACKUP_CONNECT_RETRY": "0", "BACKUP_LOG_LEVEL": "DEBUG"}
    return backup_environment(server, backup_dir, role, **{**quiet, **overrides})


def server_url(
    server: NativePostgres,
    role: str = "backup_operator",
    *,
    form: str = "uri",
    password: bool = False,
    hosts: str | None = None,
    database: str = "postgres",
    **params: str,
) -> str:
    """A connection string to `server` as `role`: a libpq URI (`form="uri"`) or key/value pairs (`"kv"`), with the
    role's password in it when `password`, `hosts` (`h1:p1,h2:p2`) instead of the server's own, and more libpq
    keywords as `params`."""
    hosts = hosts or f"{server.host}:{server.port}"
    secret = server.passwords[role] if password else None
    if form == "kv":
        pairs = [item.rsplit(":", 1) for item in hosts.split(",")]
        text = make_conninfo(
            host=",".join(host for host, _ in pairs),
            port=",".join(port for _, port in pairs),
            user=role,
            dbname=database,
            password=secret,
            **params,
        )
        return text
    userinfo = role + (f":{quote(secret, safe='')}" if secret is not None else "")
    query = f"?{urlencode(params, quote_via=quote)}" if params else ""
    return f"postgresql://{userinfo}@{hosts}/{quote(database, safe='')}{query}"


def url_env(
    server: NativePostgres, backup_dir: Path, url: str, role: str = "backup_operator", **overrides: str
) -> dict[str, str]:
    """`backup_env` with BACKUP_DATABASE_URL=`url` instead of every split connection setting (those SPECS
    declares `connection=True`) and without BACKUP_PGPASSWORD: a test says where the password is (in `url`, or
    an override BACKUP_PGPASSWORD_FILE=...)."""
    env = backup_env(server, backup_dir, role)
    for spec in SPECS:
        if spec.connection:
            env.pop(spec.name, None)
    env.pop("BACKUP_PGPASSWORD")
    env["BACKUP_DATABASE_URL"] = url
    env.update(overrides)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def only_set(settings: Settings) -> BackupSet:
    sets = scan(settings.sets_dir).sets
    assert len(sets) == 1, [backup_set.id for backup_set in sets]
    return sets[0]


def superuser_connect(server: NativePostgres, database: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(server.dsn("postgres", database), autocommit=True)


# -- fake backup sets (retention and health work on manifests, not on dumps) ------------------------------------


def fake_manifest(set_id: str, at: datetime) -> Manifest:
    database = Database(
        name="app",
        file="db-app.dump",
        owner="postgres",
        encoding="UTF8",
        locale_provider="libc",
        collate="C",
        ctype="C",
        locale=None,
        icu_rules=None,
        acl=None,
        settings=(),
        snapshot="1",
        snapshot_at=at,
        tables=(),
    )
    return Manifest(
        id=set_id,
        tool_version="test",
        server_version="18.0",
        server_version_num=180000,
        pg_dump_version="pg_dump 18",
        host="h",
        port=5432,
        user="u",
        started_at=at,
        finished_at=at + timedelta(seconds=5),
        files=(FileEntry("db-app.dump", 10, "0" * 64),),
        roles=(),
        databases=(database,),
    )


def fake_set(at: datetime, *, verified: bool = True) -> BackupSet:
    set_id = at.strftime("%Y%m%dT%H%M%SZ")
    verdict = Verdict("backup", verified, at, ("checksums",), None if verified else "bad")
    verification = Verification((verdict,))
    return BackupSet(set_id, Path("/nonexistent") / set_id, fake_manifest(set_id, at), verification)


def write_fake_set(sets_dir: Path, at: datetime, *, verified: bool = True) -> str:
    backup_set = fake_set(at, verified=verified)
    directory = sets_dir / backup_set.id
    directory.mkdir(parents=True)
    backup_set.manifest.write(directory)
    assert backup_set.verification is not None
    backup_set.verification.write(directory)
    return backup_set.id


@dataclass
class WebhookReceiver:
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)


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


def fill(volume: Path, leave: int) -> None:
    """Write a ballast file until about `leave` bytes stay free (tmpfs counts whole pages)."""
    with (volume / "ballast").open("wb") as ballast:
        ballast.write(b"\0" * max(0, free_bytes(volume) - leave))
