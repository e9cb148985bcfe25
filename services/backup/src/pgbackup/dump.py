"""Take one backup set: pg_dumpall --globals-only, then pg_dump -Fc of each database in an exported
snapshot while the exact row counts are taken in that same snapshot; then a manifest, a verification,
and one rename that makes the set visible.

Every file is written as `<name>.partial` inside `<id>.partial/`, fsynced and renamed; the directory is
renamed to `<id>` only after the manifest and a passing verification are on disk. Whatever fails or is
aborted on the way, the partial directory is removed before the error leaves this module.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from pgbackup import __version__
from pgbackup.cancel import Cancellation
from pgbackup.catalog import PARTIAL_SUFFIX, BackupSet, new_set_id
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.db import (
    Connection,
    begin_snapshot,
    bootstrap_superuser,
    connect,
    count_objects,
    count_rows,
    database_exists,
    database_properties,
    list_databases,
    pin,
    read_roles,
    scalar,
    server_version,
    user_tables,
)
from pgbackup.errors import AbortedError, BackupError, DumpError, UnreachableError
from pgbackup.files import fsync_path, sha256_file
from pgbackup.manifest import GLOBALS_NAME, Database, FileEntry, Manifest, Verification
from pgbackup.pgtools import BackgroundTool, client_env, find_tool, run_tool, tool_version
from pgbackup.target import Target
from pgbackup.verify import verify_set

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def archive_name(database: str) -> str:
    """File name of a database's archive: the name with every unsafe byte as %XX (reversible, no clash)."""
    safe = _UNSAFE.sub(lambda match: "".join(f"%{byte:02X}" for byte in match.group().encode()), database)
    return f"db-{safe}.dump"


def _seal(partial_file: Path) -> FileEntry:
    """fsync a finished `<name>.partial`, rename it to `<name>`, and describe it for the manifest."""
    fsync_path(partial_file)
    final = partial_file.with_name(partial_file.name.removesuffix(PARTIAL_SUFFIX))
    os.replace(partial_file, final)
    # hashed while still in the page cache; the verification drops the cache and re-reads from disk
    return FileEntry(name=final.name, bytes=final.stat().st_size, sha256=sha256_file(final))


def take_backup(settings: Settings, *, clock: Clock, cancel: Cancellation) -> BackupSet:
    """Write, verify and publish one set; raise DumpError (or AbortedError) with nothing left behind."""
    settings.sets_dir.mkdir(parents=True, exist_ok=True)
    started_at = clock.now()
    set_id = new_set_id(settings.sets_dir, started_at)
    partial = settings.sets_dir / f"{set_id}{PARTIAL_SUFFIX}"
    try:
        partial.mkdir()
    except OSError as exc:  # outside the cleanup below: a directory we did not create is never removed
        raise DumpError(
            f"unable to create the backup set directory {partial}: {exc.strerror or exc}",
            "check free space and permissions of BACKUP_DIR and BACKUP_DIR/sets; earlier sets are untouched",
        ) from exc
    logger.info("backup started set=%s", set_id)
    try:
        manifest = _write_set(settings, partial, set_id, started_at, clock=clock, cancel=cancel)
        cancel.check()
        verdict = verify_set(partial, manifest, kind="backup", bin_dir=settings.pg_bin_dir, clock=clock, cancel=cancel)
        if not verdict.ok:
            raise DumpError(
                f"unable to verify the new set {set_id}: {verdict.error}",
                "the set was discarded; check the disk (dmesg, free space) and the log above",
            )
        verification = Verification((verdict,))
        verification.write(partial)
        fsync_path(partial)
        final = settings.sets_dir / set_id
        os.replace(partial, final)
        fsync_path(settings.sets_dir)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if cancel.cancelled and not isinstance(exc, AbortedError):
            raise AbortedError(
                f"the backup {set_id} was aborted ({cancel.reason}); its partial files are removed"
            ) from exc
        if isinstance(exc, OSError):
            raise DumpError(
                f"unable to write backup set {set_id} in {settings.sets_dir}: {exc}",
                "check free space and permissions of BACKUP_DIR; earlier sets are untouched",
            ) from exc
        raise
    logger.info(
        "backup finished set=%s bytes=%d duration=%.3fs databases=%s",
        set_id,
        manifest.bytes,
        manifest.duration_seconds,
        ",".join(database.name for database in manifest.databases),
    )
    return BackupSet(set_id, final, manifest, verification)


def _write_set(
    settings: Settings, directory: Path, set_id: str, started_at: datetime, *, clock: Clock, cancel: Cancellation
) -> Manifest:
    """The set's files and manifest in `directory`; `started_at` is the time its id was made from."""
    pg_dump = str(find_tool("pg_dump", settings.pg_bin_dir))
    pg_dumpall = str(find_tool("pg_dumpall", settings.pg_bin_dir))
    dump_version = tool_version("pg_dump", settings.pg_bin_dir)
    try:
        with connect(settings.target) as conn, cancel.connection(conn):
            target = pin(settings.target, conn)  # every later connection and pg_dump: this server, not another host
            version, version_num = server_version(conn)
            names = list(settings.databases) or list_databases(conn)
            missing = [name for name in names if not database_exists(conn, name)]
            if missing:
                raise DumpError(
                    f"unable to back up database(s) {', '.join(missing)}: they do not exist",
                    "fix BACKUP_DATABASES, or leave it empty to back up every database",
                )
            roles = read_roles(conn)
            bootstrap = bootstrap_superuser(conn)
            properties = {name: database_properties(conn, name) for name in names}
    except BackupError:
        raise
    except Exception as exc:
        cancel.check()
        raise DumpError(
            f"unable to read the catalog of {settings.target.label} as {settings.target.user}: {exc}",
            "is the server up and the password right? `python -m pgbackup status` shows the last errors",
        ) from exc
    if dump_version.major < version_num // 10000:
        raise DumpError(
            f"unable to dump a PostgreSQL {version} server with {dump_version.text}",
            "use pg_dump of the server's major version or newer (the backup image is built FROM the postgres image)",
        )

    files: list[FileEntry] = []
    globals_partial = directory / f"{GLOBALS_NAME}{PARTIAL_SUFFIX}"
    run_tool(
        [
            pg_dumpall,
            "--globals-only",
            "--no-role-passwords",
            "--no-password",
            f"--file={globals_partial}",
            f"--dbname={target.conninfo()}",
            f"--database={target.dbname}",
        ],
        env=client_env(target),
        what="dump the roles and tablespaces (pg_dumpall --globals-only)",
        cancel=cancel,
    )
    files.append(_seal(globals_partial))

    databases = []
    for name in names:
        cancel.check()
        database, entry = _dump_database(
            settings, target, directory, name, properties[name], pg_dump=pg_dump, cancel=cancel
        )
        databases.append(database)
        files.append(entry)

    manifest = Manifest(
        id=set_id,
        tool_version=__version__,
        server_version=version,
        server_version_num=version_num,
        pg_dump_version=dump_version.text,
        host=target.get("host"),
        port=int(target.get("port")),
        user=target.user,
        started_at=started_at,
        finished_at=clock.now(),
        files=tuple(files),
        roles=roles,
        databases=tuple(databases),
        bootstrap_superuser=bootstrap,
    )
    manifest.write(directory)
    return manifest


def _dump_database(
    settings: Settings,
    target: Target,
    directory: Path,
    name: str,
    properties: dict[str, object],
    *,
    pg_dump: str,
    cancel: Cancellation,
) -> tuple[Database, FileEntry]:
    """pg_dump one database in an exported snapshot, counting its rows in that snapshot meanwhile."""
    file_name = archive_name(name)
    partial_file = directory / f"{file_name}{PARTIAL_SUFFIX}"
    try:
        conn = connect(target, name)
    except UnreachableError:
        cancel.check()
        raise
    with conn, cancel.connection(conn):
        if settings.lock_wait_timeout > 0:
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false)", (f"{int(settings.lock_wait_timeout * 1000)}ms",)
            )
        snapshot, snapshot_at = begin_snapshot(conn)
        argv = [
            pg_dump,
            "--format=custom",
            f"--file={partial_file}",
            f"--snapshot={snapshot}",
            "--no-password",
            f"--dbname={target.conninfo(name)}",
        ]
        if settings.compress:
            argv.append(f"--compress={settings.compress}")
        if settings.lock_wait_timeout > 0:
            argv.append(f"--lock-wait-timeout={int(settings.lock_wait_timeout * 1000)}ms")
        tool = BackgroundTool(argv, env=client_env(target), what=f"dump database {name}", cancel=cancel)
        # Count while pg_dump writes: the same snapshot, so the counts are exactly what the archive holds.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgbackup-dump") as pool:
            finished = pool.submit(tool.finish)
            finished.add_done_callback(lambda future: _cancel_if_failed(future, conn))
            try:
                tables = count_rows(conn, user_tables(conn))
                objects = count_objects(conn)
                size_bytes = int(scalar(conn, "SELECT pg_database_size(current_database())"))
            except BaseException:
                if finished.done() and finished.exception() is not None:
                    finished.result()  # pg_dump failed first and its error says why; the count was cancelled
                tool.stop()
                raise
            finished.result()
        conn.execute("COMMIT")
    entry = _seal(partial_file)
    logger.info("dumped database=%s tables=%d bytes=%d snapshot=%s", name, len(tables), entry.bytes, snapshot)
    database = Database(
        name=name,
        file=file_name,
        snapshot=snapshot,
        snapshot_at=snapshot_at,
        tables=tables,
        objects=objects,
        size_bytes=size_bytes,
        **properties,  # type: ignore[arg-type]
    )
    return database, entry


def _cancel_if_failed(future: Future[None], conn: Connection) -> None:
    """When pg_dump fails, stop the count it runs beside instead of letting it run to its end."""
    if future.exception() is not None:
        try:
            conn.cancel_safe(timeout=5)
        except Exception as exc:  # the count then simply runs to its end before the error is raised
            logger.warning("unable to cancel the row count after pg_dump failed: %s", exc)
