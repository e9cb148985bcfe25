"""Startup checks, each with an actionable message, all run and reported together:
the backups directory is writable, it has room for the next set, the client tools agree on a version
that can dump the server, and the role can connect and read what it must back up."""

from __future__ import annotations

import logging
import os
import random

from pgbackup.cancel import Cancellation
from pgbackup.catalog import scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.db import connect, list_databases, scalar, server_version
from pgbackup.errors import StartupCheckError, ToolError, UnreachableError
from pgbackup.files import free_bytes
from pgbackup.health import required_free_bytes
from pgbackup.pgtools import tool_version

logger = logging.getLogger(__name__)

TOOLS = ("pg_dump", "pg_dumpall", "pg_restore")
RETRY_FIRST_DELAY = 1.0
RETRY_MAX_DELAY = 10.0


class Problem:
    """One failed check: what failed (with the value), then what to do (the `hint:` lines)."""

    def __init__(self, what: str, *hints: str) -> None:
        self.what = what
        self.hints = hints

    def __str__(self) -> str:
        return "\n".join([self.what, *(f"hint: {hint}" for hint in self.hints)])


def check_directory(settings: Settings) -> list[Problem]:
    directory = settings.backup_dir
    # both: the state file lives in BACKUP_DIR, the sets in BACKUP_DIR/sets (which a run as another user may
    # have left behind, unwritable for this one)
    for where in (directory, settings.sets_dir):
        try:
            where.mkdir(parents=True, exist_ok=True)
            probe = where / f".write-probe-{os.getpid()}"
            with probe.open("wb") as stream:
                stream.write(b"probe")
                stream.flush()
                os.fsync(stream.fileno())
            probe.unlink()
        except OSError as exc:
            shown = "BACKUP_DIR" if where == directory else "BACKUP_DIR/sets"
            return [
                Problem(
                    f"unable to write to {shown}={where}: {exc.strerror}",
                    f"mount a writable volume there, owned by uid {os.geteuid()}",
                )
            ]
    return []


def check_free_space(settings: Settings) -> list[Problem]:
    """Room for the last set's size plus the margin (at least BACKUP_MIN_FREE_BYTES)."""
    required = required_free_bytes(settings, scan(settings.sets_dir))
    try:
        free = free_bytes(settings.backup_dir)
    except OSError as exc:
        return [Problem(f"unable to read the free space of BACKUP_DIR={settings.backup_dir}: {exc.strerror}")]
    if free < required:
        return [
            Problem(
                f"not enough free space in BACKUP_DIR={settings.backup_dir}: {free} bytes free, the next set needs "
                f"{required} (last set + {settings.free_space_margin:g}%, at least BACKUP_MIN_FREE_BYTES)",
                "free space, lower BACKUP_KEEP_* and run `python -m pgbackup prune`, or grow the volume",
            )
        ]
    return []


def check_tools(settings: Settings) -> tuple[int | None, list[Problem]]:
    """(pg_dump major, problems): every tool found, all of one major version."""
    majors: dict[str, int] = {}
    problems: list[Problem] = []
    for name in TOOLS:
        try:
            majors[name] = tool_version(name, settings.pg_bin_dir).major
        except ToolError as exc:
            problems.append(Problem(exc.message, *exc.hints))
    if len(set(majors.values())) > 1:
        found = ", ".join(f"{name} {major}" for name, major in majors.items())
        problems.append(
            Problem(f"the client tools are of different major versions ({found})", "install one PostgreSQL client")
        )
    return majors.get("pg_dump"), problems


def check_server(settings: Settings, dump_major: int | None, *, clock: Clock, cancel: Cancellation) -> list[Problem]:
    """Connect (retrying for BACKUP_CONNECT_RETRY what retrying can fix), then check version and privileges."""
    target = settings.target
    deadline = clock.monotonic() + settings.connect_retry
    delay = RETRY_FIRST_DELAY
    while True:
        try:
            conn = connect(target)
            break
        except UnreachableError as exc:
            if exc.permanent or clock.monotonic() + delay > deadline:
                raise
            logger.warning("database not reachable yet (%s), retrying in %.1f s: %s", exc.kind, delay, exc.message)
            if cancel.wait(delay):
                cancel.check()
            delay = min(RETRY_MAX_DELAY, delay * 2) * random.uniform(0.8, 1.2)  # jitter, not security
    problems: list[Problem] = []
    with conn:
        version, version_num = server_version(conn)
        if dump_major is not None and dump_major < version_num // 10000:
            problems.append(
                Problem(
                    f"pg_dump {dump_major} cannot dump the PostgreSQL {version} server",
                    f"use the client tools of major {version_num // 10000} or newer "
                    "(build the backup image FROM the server's postgres image)",
                )
            )
        superuser = bool(scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        if not superuser and not scalar(conn, "SELECT pg_has_role(current_user, 'pg_read_all_data', 'USAGE')"):
            problems.append(
                Problem(f"role {target.user} cannot read all data", f"GRANT pg_read_all_data TO {target.user}")
            )
        if not superuser and not scalar(
            conn, "SELECT pg_has_role(current_user, 'pg_use_reserved_connections', 'USAGE')"
        ):
            logger.warning(
                "role=%s is not in pg_use_reserved_connections: backups fail when clients hold every slot",
                target.user,
            )
        for database in settings.databases or list_databases(conn):
            exists = scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (database,))
            if not exists:
                problems.append(
                    Problem(f"database {database} of BACKUP_DATABASES does not exist", "fix BACKUP_DATABASES")
                )
            elif not scalar(conn, "SELECT has_database_privilege(%s, 'CONNECT')", (database,)):
                problems.append(
                    Problem(
                        f"role {target.user} may not connect to database {database}",
                        f"GRANT CONNECT ON DATABASE {database} TO {target.user}, or set BACKUP_DATABASES",
                    )
                )
    return problems


def startup_checks(settings: Settings, *, clock: Clock, cancel: Cancellation) -> None:
    """Run every check; raise StartupCheckError listing every problem found."""
    problems = check_directory(settings)
    if not problems:
        problems += check_free_space(settings)
    dump_major, tool_problems = check_tools(settings)
    problems += tool_problems
    try:
        problems += check_server(settings, dump_major, clock=clock, cancel=cancel)
    except UnreachableError as exc:
        if not problems:
            raise  # the server alone is missing: exit 5, which says "try again later"
        problems.append(Problem(exc.message, *exc.hints))
    if problems:
        items = "\n".join("  - " + str(problem).replace("\n", "\n    ") for problem in problems)
        raise StartupCheckError(f"startup checks failed:\n{items}")
    target = settings.target
    logger.info("startup checks passed dir=%s server=%s user=%s", settings.backup_dir, target.label, target.user)
