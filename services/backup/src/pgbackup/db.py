"""What pgbackup asks PostgreSQL, in one place: connections, versions, roles, database properties,
exact row counts and object counts. Identifiers are always composed with psycopg.sql, never pasted."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgbackup.errors import UnreachableError
from pgbackup.failures import diagnose
from pgbackup.manifest import DatabaseSetting, Grant, Membership, Role, TableCount
from pgbackup.target import Target

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]

# Schemas that are PostgreSQL's own, never the user's data.
_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
"""
RELKIND_NAMES = {
    "r": "tables",
    "p": "partitioned_tables",
    "i": "indexes",
    "I": "partitioned_indexes",
    "S": "sequences",
    "v": "views",
    "m": "materialized_views",
    "c": "composite_types",
    "f": "foreign_tables",
}


def connect(target: Target, database: str | None = None, *, autocommit: bool = True) -> Connection:
    """Connect to the target (its maintenance database, or `database`); the password is passed as a keyword.

    A failure raises UnreachableError (exit status 5) saying what went wrong and what to do (failures.py);
    `permanent` says whether retrying can help.
    """
    params = target.params(database)
    # one time zone for every timestamp read as text (role VALID UNTIL), whatever the server's default
    params["options"] = " ".join(part for part in (params.get("options", ""), "-c TimeZone=UTC") if part)
    try:
        return psycopg.connect(make_conninfo(**params), password=target.password, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise connect_error(target, database or target.dbname, str(exc).strip()) from None


def connect_error(target: Target, database: str, message: str) -> UnreachableError:
    """The UnreachableError for libpq's `message` about connecting to `database` of `target`."""
    failure = diagnose(message, target)
    return UnreachableError(
        f"unable to connect to {target.label} database {database} as {target.user}: {failure.reason}: {message}",
        *failure.hints,
        kind=failure.kind,
        permanent=failure.permanent,
    )


def pin(target: Target, conn: Connection) -> Target:
    """`target` narrowed to the server `conn` reached: what every later connection and client program of the
    same backup or restore uses (the snapshot and the staging database exist on that server only)."""
    return target.pinned(conn.info.host, conn.info.hostaddr, conn.info.port)


def scalar(conn: Connection, query: sql.SQL | sql.Composed | str, params: Sequence[Any] | None = None) -> Any:
    """The first column of the first row; LookupError when there is no row."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row[0]


def server_version(conn: Connection) -> tuple[str, int]:
    """(server_version, server_version_num) of the connected server."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None  # a SELECT without FROM always returns one row
    return str(row[0]), int(row[1])


def list_databases(conn: Connection) -> list[str]:
    """Every database that is not a template and allows connections, by name."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname"
    ).fetchall()
    return [str(row[0]) for row in rows]


def bootstrap_superuser(conn: Connection) -> str:
    """The role initdb created (OID 10): pg_dumpall names it as the grantor of predefined roles."""
    return str(scalar(conn, "SELECT rolname FROM pg_roles WHERE oid = 10"))


def database_exists(conn: Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def read_roles(conn: Connection) -> tuple[Role, ...]:
    """Every role except PostgreSQL's predefined pg_* ones, with global settings and memberships."""
    memberships: dict[str, set[Membership]] = {}
    for member, role, admin, inherit, set_option in conn.execute(
        """
        SELECT m.rolname, g.rolname, am.admin_option, am.inherit_option, am.set_option
        FROM pg_auth_members am
        JOIN pg_roles m ON m.oid = am.member
        JOIN pg_roles g ON g.oid = am.roleid
        WHERE m.rolname !~ '^pg_'
        """
    ).fetchall():
        memberships.setdefault(member, set()).add(Membership(role, bool(admin), bool(inherit), bool(set_option)))
    roles = []
    for row in conn.execute(
        """
        SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
               r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text,
               coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                         WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}')
        FROM pg_roles r
        WHERE r.rolname !~ '^pg_'
        ORDER BY r.rolname
        """
    ).fetchall():
        name = str(row[0])
        roles.append(
            Role(
                name=name,
                superuser=bool(row[1]),
                inherit=bool(row[2]),
                createrole=bool(row[3]),
                createdb=bool(row[4]),
                login=bool(row[5]),
                replication=bool(row[6]),
                bypassrls=bool(row[7]),
                connection_limit=int(row[8]),
                valid_until=row[9],
                settings=tuple(sorted(row[10])),
                member_of=tuple(sorted(memberships.get(name, ()), key=lambda item: item.role)),
            )
        )
    return tuple(roles)


def database_properties(conn: Connection, name: str) -> dict[str, Any]:
    """Owner, encoding, locale, ACL and settings of database `name`: what CREATE DATABASE needs again."""
    row = conn.execute(
        """
        SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding),
               CASE d.datlocprovider WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin' ELSE 'libc' END,
               d.datcollate, d.datctype, d.datlocale, d.daticurules, d.datacl IS NULL
        FROM pg_database d WHERE d.datname = %s
        """,
        (name,),
    ).fetchone()
    if row is None:
        raise LookupError(f"database {name!r} does not exist")
    acl: tuple[Grant, ...] | None = None
    if not row[7]:
        acl = tuple(
            Grant(grantee, str(privilege), bool(grantable))
            for grantee, privilege, grantable in conn.execute(
                """
                SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                       a.privilege_type, a.is_grantable
                FROM pg_database d, aclexplode(d.datacl) a
                WHERE d.datname = %s
                ORDER BY 1 NULLS FIRST, 2
                """,
                (name,),
            ).fetchall()
        )
    settings = tuple(
        DatabaseSetting(role, str(setting))
        for role, setting in conn.execute(
            """
            SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig)
            FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
            WHERE d.datname = %s
            ORDER BY 1 NULLS FIRST, 2
            """,
            (name,),
        ).fetchall()
    )
    return {
        "owner": str(row[0]),
        "encoding": str(row[1]),
        "locale_provider": str(row[2]),
        "collate": str(row[3]),
        "ctype": str(row[4]),
        "locale": row[5],
        "icu_rules": row[6],
        "acl": acl,
        "settings": settings,
    }


def begin_snapshot(conn: Connection) -> tuple[str, datetime]:
    """Open a REPEATABLE READ transaction and export its snapshot for pg_dump --snapshot.

    The caller keeps the transaction open until pg_dump has finished. Row security is off, as pg_dump
    sets it: a table the role cannot read completely fails the count instead of being undercounted.
    """
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    conn.execute("SET statement_timeout = 0")
    conn.execute("SET row_security = off")
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    row = conn.execute("SELECT pg_export_snapshot(), clock_timestamp()").fetchone()
    assert row is not None  # a SELECT without FROM always returns one row
    return str(row[0]), row[1]


def user_tables(conn: Connection) -> list[tuple[str, str]]:
    """(schema, table) of every table whose rows pg_dump dumps: ordinary, not temporary, not an extension's."""
    rows = conn.execute(
        f"""
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {_USER_SCHEMAS}
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1, 2
        """
    ).fetchall()
    return [(str(schema), str(table)) for schema, table in rows]


def count_rows(conn: Connection, tables: Iterable[tuple[str, str]]) -> tuple[TableCount, ...]:
    """Exact count(*) of each table, in the connection's current transaction (its snapshot)."""
    counts = []
    for schema, table in tables:
        rows = scalar(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts.append(TableCount(schema, table, int(rows)))
    return tuple(counts)


def count_objects(conn: Connection) -> dict[str, int]:
    """How many relations of each kind, plus functions, live in the user's schemas."""
    objects: dict[str, int] = {
        RELKIND_NAMES.get(str(kind), str(kind)): int(count)
        for kind, count in conn.execute(
            f"""
        SELECT c.relkind::text, count(*)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS}
        GROUP BY 1
        """
        ).fetchall()
    }
    objects["functions"] = int(
        scalar(
            conn,
            f"""
            SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE {_USER_SCHEMAS}
            """,
        )
    )
    return dict(sorted(objects.items()))
