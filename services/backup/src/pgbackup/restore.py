"""Restore one database of a set into a new database, and the building blocks the drill shares.

The order is chosen so that a failure never damages what exists: checksums and archive listing are
checked before anything is created; the archive is restored into a staging database with a random
name; its row counts are compared with the manifest; only then is an existing target dropped (with
--force) and the staging database renamed to the target. Missing roles are created from the manifest
(without passwords: backups never hold them); existing roles are never altered.
"""

from __future__ import annotations

import logging
import queue
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST, BackupSet, scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.db import Connection, connect, database_exists, pin, scalar
from pgbackup.errors import RestoreError, TargetExistsError, UsageError, VerificationError
from pgbackup.files import shared_lock
from pgbackup.manifest import MANIFEST_NAME, Database, Role, TableCount
from pgbackup.pgtools import client_env, find_tool, run_tool
from pgbackup.verify import check_archives, check_checksums

logger = logging.getLogger(__name__)

_PROTECTED = ("template0", "template1")
_PRIVILEGES = {"CREATE", "TEMPORARY", "CONNECT"}
_PROVIDERS = {"libc", "icu", "builtin"}


@dataclass(slots=True)
class RestoreResult:
    set_id: str
    source_db: str
    target_db: str
    replaced: bool
    roles_created: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    seconds: float = 0.0
    passed_over: str | None = None  # `latest` skipped newer sets: which, and why


def check_set(backup_set: BackupSet, *, bin_dir: Path | None, cancel: Cancellation | None) -> None:
    """Raise VerificationError unless every checksum matches and every archive lists."""
    problems = check_checksums(backup_set.path, backup_set.manifest)
    if not problems:
        problems = check_archives(backup_set.path, backup_set.manifest, bin_dir=bin_dir, cancel=cancel)
    if problems:
        raise VerificationError(
            f"unable to use backup set {backup_set.id}: it does not match its manifest: {'; '.join(problems)}",
            "nothing was restored; pick an older set (`make backups`) and run `python -m pgbackup verify` on all",
        )


def existing_roles(conn: Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def apply_setting(conn: Connection, alter: sql.Composable, setting: str) -> None:
    """`<alter> SET name FROM CURRENT` after set_config(name, value): the server parses the stored value
    exactly as it wrote it (lists such as search_path included), so no quoting is redone here."""
    name, _, value = setting.partition("=")
    with conn.transaction():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        conn.execute(sql.SQL("{} SET {} FROM CURRENT").format(alter, sql.Identifier(name)))


def create_missing_roles(conn: Connection, roles: Sequence[Role]) -> list[str]:
    """Create the manifest's roles that the server lacks, with their attributes, settings and memberships."""
    present = existing_roles(conn)
    missing = [role for role in roles if role.name not in present]
    for role in missing:
        attributes = [
            "SUPERUSER" if role.superuser else "NOSUPERUSER",
            "INHERIT" if role.inherit else "NOINHERIT",
            "CREATEROLE" if role.createrole else "NOCREATEROLE",
            "CREATEDB" if role.createdb else "NOCREATEDB",
            "LOGIN" if role.login else "NOLOGIN",
            "REPLICATION" if role.replication else "NOREPLICATION",
            "BYPASSRLS" if role.bypassrls else "NOBYPASSRLS",
        ]
        statement = sql.SQL("CREATE ROLE {} WITH {} CONNECTION LIMIT {}").format(
            sql.Identifier(role.name), sql.SQL(" ".join(attributes)), sql.Literal(role.connection_limit)
        )
        if role.valid_until is not None:
            statement += sql.SQL(" VALID UNTIL {}").format(sql.Literal(role.valid_until))
        conn.execute(statement)
        for setting in role.settings:
            apply_setting(conn, sql.SQL("ALTER ROLE {}").format(sql.Identifier(role.name)), setting)
        logger.warning("created missing role=%s without a password: set one with ALTER ROLE ... PASSWORD", role.name)
    created = {role.name for role in missing}
    present |= created
    for role in roles:
        for membership in role.member_of:
            if role.name not in created and membership.role not in created:
                continue  # both existed: never alter existing roles
            if membership.role not in present:
                logger.warning("skipped membership of role=%s in missing role=%s", role.name, membership.role)
                continue
            conn.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN {}, INHERIT {}, SET {}").format(
                    sql.Identifier(membership.role),
                    sql.Identifier(role.name),
                    sql.SQL("TRUE" if membership.admin else "FALSE"),
                    sql.SQL("TRUE" if membership.inherit else "FALSE"),
                    sql.SQL("TRUE" if membership.set else "FALSE"),
                )
            )
    return [role.name for role in missing]


def create_database(conn: Connection, name: str, database: Database) -> None:
    """CREATE DATABASE `name` with the source's encoding, locale and owner, then its ACL and settings."""
    if database.locale_provider not in _PROVIDERS:
        raise RestoreError(f"unable to create database {name}: unknown locale provider {database.locale_provider!r}")
    statement = sql.SQL(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LOCALE_PROVIDER {} LC_COLLATE {} LC_CTYPE {}"
    ).format(
        sql.Identifier(name),
        sql.Literal(database.encoding),
        sql.SQL(database.locale_provider),
        sql.Literal(database.collate),
        sql.Literal(database.ctype),
    )
    if database.locale_provider == "icu" and database.locale:
        statement += sql.SQL(" ICU_LOCALE {}").format(sql.Literal(database.locale))
        if database.icu_rules:
            statement += sql.SQL(" ICU_RULES {}").format(sql.Literal(database.icu_rules))
    if database.locale_provider == "builtin" and database.locale:
        statement += sql.SQL(" BUILTIN_LOCALE {}").format(sql.Literal(database.locale))
    present = existing_roles(conn)
    if database.owner in present:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(database.owner))
    else:
        logger.warning("owner role=%s of database=%s is missing: the restoring role owns it", database.owner, name)
    try:
        conn.execute(statement)
    except Exception as exc:
        raise RestoreError(
            f"unable to create database {name}: {exc}",
            "the server needs the source's encoding and locale "
            f"({database.encoding}, {database.locale_provider} {database.collate})",
        ) from exc
    target = sql.Identifier(name)
    if database.acl is not None:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target))
        for grant in database.acl:
            if grant.privilege not in _PRIVILEGES:
                continue
            if grant.grantee is not None and grant.grantee not in present:
                logger.warning("skipped %s on database=%s for missing role=%s", grant.privilege, name, grant.grantee)
                continue
            grantee = sql.SQL("PUBLIC") if grant.grantee is None else sql.Identifier(grant.grantee)
            conn.execute(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(grant.privilege), target, grantee, sql.SQL(" WITH GRANT OPTION" if grant.grantable else "")
                )
            )
    for setting in database.settings:
        if setting.role is None:
            alter = sql.SQL("ALTER DATABASE {}").format(target)
        elif setting.role in present:
            alter = sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(setting.role), target)
        else:
            continue
        apply_setting(conn, alter, setting.setting)


def drop_database(conn: Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def restore_archive(
    archive: Path,
    *,
    conninfo: str,
    env: Mapping[str, str],
    bin_dir: Path | None,
    jobs: int,
    cancel: Cancellation | None,
    what: str,
) -> None:
    """pg_restore the archive into the database `conninfo` names; stop at the first error.

    `conninfo` (built by psycopg's make_conninfo, so that no database name, whatever its characters, is misread
    as connection options) is pg_restore's --dbname; what it leaves out (the password) comes from `env`.
    """
    pg_restore = str(find_tool("pg_restore", bin_dir))
    run_tool(
        [pg_restore, "--exit-on-error", "--no-password", f"--jobs={jobs}", f"--dbname={conninfo}", str(archive)],
        env=env,
        what=what,
        cancel=cancel,
    )


def compare_counts(
    connect_restored: Callable[[], Connection], database: Database, *, jobs: int = 1
) -> tuple[list[str], int]:
    """(problems, total rows): each manifest table's exact count in the restored database.

    Tables are counted on up to `jobs` connections at once (those of `connect_restored()`), the parallelism
    pg_restore just had: an exact count reads the whole table, and big tables would otherwise be counted one
    after another on one core.
    """
    tables = list(database.tables)
    workers = max(1, min(jobs, len(tables)))
    pending: queue.SimpleQueue[TableCount] = queue.SimpleQueue()
    for table in tables:
        pending.put(table)
    counted: dict[tuple[str, str], int | str] = {}

    def count_some() -> None:
        with connect_restored() as conn:
            while True:
                try:
                    table = pending.get_nowait()
                except queue.Empty:
                    return
                statement = sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(table.schema), sql.Identifier(table.table)
                )
                try:
                    counted[table.schema, table.table] = int(scalar(conn, statement))
                except psycopg.Error as exc:
                    counted[table.schema, table.table] = str(exc).strip()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgbackup-count") as pool:
        for future in [pool.submit(count_some) for _ in range(workers)]:
            future.result()  # a failed connection is raised here, as it was before counting began
    problems = []
    total = 0
    for table in tables:  # in manifest order, whatever order the workers finished in
        rows = counted[table.schema, table.table]
        if isinstance(rows, str):
            problems.append(f"{table.schema}.{table.table}: {rows}")
            continue
        total += rows
        if rows != table.rows:
            problems.append(f"{table.schema}.{table.table}: {rows} rows restored, {table.rows} in the manifest")
    return problems, total


def _pick_source(backup_set: BackupSet, source_db: str | None, target_db: str) -> Database:
    """The database of the set to restore: `source_db`, or the set's only application database (any but
    postgres) when it is None. UsageError, listing what the set holds, when neither names one."""
    names = [database.name for database in backup_set.manifest.databases]
    if source_db is not None:
        try:
            return backup_set.manifest.database(source_db)
        except KeyError:
            raise UsageError(
                f"unable to restore database {source_db!r}: set {backup_set.id} holds {', '.join(names)}",
                "name one of those with SOURCE_DB (--source-db)",
            ) from None
    candidates = [database.name for database in backup_set.manifest.databases if database.name != "postgres"]
    if len(candidates) == 1:
        return backup_set.manifest.database(candidates[0])
    held = (
        f"{len(candidates)} application databases, {', '.join(candidates)}"
        if candidates
        else f"no application database, only {', '.join(names)}"
    )
    raise UsageError(
        f"unable to choose which database of set {backup_set.id} to restore: it holds {held}",
        f"name one with SOURCE_DB (--source-db), for example: make restore BACKUP={backup_set.id} "
        f"SOURCE_DB={(candidates or names)[0]} TARGET_DB={target_db}",
    )


def check_target_name(name: str) -> None:
    if not name:
        raise UsageError(
            "unable to restore: no target database given",
            "name the new database to restore into with TARGET_DB (--target-db)",
        )
    if len(name.encode()) > 63:
        raise RestoreError(f"unable to restore into {name!r}: a database name has 1 to 63 bytes")
    if name in _PROTECTED:
        raise RestoreError(f"unable to restore into {name}: template databases are never restore targets")


def restore_set(
    settings: Settings,
    *,
    selector: str,
    target_db: str,
    source_db: str | None,
    force: bool,
    clock: Clock,
    cancel: Cancellation | None = None,
) -> RestoreResult:
    """Restore a database of a set into `target_db` (see the module docstring for the order of steps)."""
    began = clock.monotonic()
    check_target_name(target_db)
    catalog = scan(settings.sets_dir)
    backup_set = catalog.resolve(selector)
    passed_over = catalog.passed_over(backup_set) if selector == LATEST else None
    if passed_over:
        logger.warning("restore %s", passed_over)
    source = _pick_source(backup_set, source_db, target_db)
    with shared_lock(backup_set.path / MANIFEST_NAME):
        check_set(backup_set, bin_dir=settings.pg_bin_dir, cancel=cancel)
        if target_db == settings.target.dbname:
            raise RestoreError(
                f"unable to restore into {target_db}: it is the maintenance database "
                f"({settings.target.where('dbname')}), which restore connects to",
                "restore into another name, then rename it with ALTER DATABASE from another database",
            )
        with connect(settings.target) as conn:
            target = pin(settings.target, conn)  # pg_restore and the counts: the server the staging database is on
            if not scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
                raise RestoreError(
                    f"unable to restore as {target.user}: restoring owners, roles and databases needs a superuser",
                    "run the restore service (make restore), which connects as postgres; with BACKUP_DATABASE_URL, "
                    "name a superuser in it",
                )
            _refuse_existing(conn, target_db, force)
            result = RestoreResult(backup_set.id, source.name, target_db, replaced=False, passed_over=passed_over)
            result.roles_created = create_missing_roles(conn, backup_set.manifest.roles)
            staging = f"pgbackup_restore_{secrets.token_hex(6)}"
            logger.info(
                "restore started set=%s source=%s target=%s staging=%s", backup_set.id, source.name, target_db, staging
            )
            try:
                create_database(conn, staging, source)
                restore_archive(
                    backup_set.path / source.file,
                    conninfo=target.conninfo(staging),
                    env=client_env(target),
                    bin_dir=settings.pg_bin_dir,
                    jobs=settings.restore_jobs,
                    cancel=cancel,
                    what=f"restore {source.name} of set {backup_set.id}",
                )
                problems, result.rows = compare_counts(
                    lambda: connect(target, staging), source, jobs=settings.restore_jobs
                )
                if problems:
                    raise VerificationError(
                        f"unable to restore set {backup_set.id}: the restored rows differ from the manifest: "
                        + "; ".join(problems),
                        f"{target_db} was not touched; try an older set",
                    )
                _refuse_existing(conn, target_db, force)
                if database_exists(conn, target_db):
                    logger.warning("dropping the existing database=%s (--force)", target_db)
                    drop_database(conn, target_db)
                    result.replaced = True
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(target_db))
                )
            except BaseException:
                drop_database(conn, staging)
                raise
    result.tables = len(source.tables)
    result.seconds = clock.monotonic() - began
    logger.info(
        "restore finished set=%s target=%s tables=%d rows=%d seconds=%.3f",
        result.set_id,
        target_db,
        result.tables,
        result.rows,
        result.seconds,
    )
    return result


def _refuse_existing(conn: Connection, target_db: str, force: bool) -> None:
    if database_exists(conn, target_db) and not force:
        raise TargetExistsError(
            f"unable to restore into {target_db}: the database exists",
            f"restore into a new name, or replace it with FORCE=1 (--force): {target_db} is dropped only "
            "after the restored copy is verified",
        )
