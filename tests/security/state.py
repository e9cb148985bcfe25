"""A snapshot of everything an attack could change, read through a superuser connection.

Security tests capture it before an attack and compare after: a tool error proves nothing by itself
(the Datadog proof of concept showed an error while its row was written), the database state does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg import sql

# Each probe is one query returning rows; the snapshot keeps them as a tuple of tuples.
_PROBES: dict[str, str] = {
    # relations, columns, functions, schemas, types, collations, extensions, owners included
    "schema": """
        SELECT 'class', n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || c.relowner::regrole::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
        UNION ALL SELECT 'column', attrelid::regclass::text || '.' || attname || ':' || atttypid::regtype::text
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%'
        UNION ALL SELECT 'function', oid::regprocedure::text || ':' || provolatile::text FROM pg_proc
        UNION ALL SELECT 'namespace', nspname || ':' || nspowner::regrole::text FROM pg_namespace
        WHERE nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
        UNION ALL SELECT 'collations', count(*)::text FROM pg_collation
        UNION ALL SELECT 'types', count(*)::text FROM pg_type
        UNION ALL SELECT 'extension', extname || ':' || extversion FROM pg_extension
        UNION ALL SELECT 'database', datname FROM pg_database
        UNION ALL SELECT 'acl', n.nspname || '.' || c.relname || ':' || coalesce(c.relacl::text, '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop'
        ORDER BY 1, 2
    """,
    "roles": """
        SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
               rolbypassrls, rolconnlimit, rolpassword IS NOT NULL
        FROM pg_authid ORDER BY 1
    """,
    "memberships": """
        SELECT roleid::regrole::text, member::regrole::text, admin_option, inherit_option, set_option
        FROM pg_auth_members ORDER BY 1, 2
    """,
    "role_settings": """
        SELECT coalesce(setdatabase::text, ''), coalesce(setrole::regrole::text, ''), setconfig::text
        FROM pg_db_role_setting ORDER BY 1, 2
    """,
    "file_settings": "SELECT name, setting, coalesce(error, '') FROM pg_file_settings ORDER BY 1, 2",
    "large_objects": "SELECT oid::bigint, lomowner::regrole::text FROM pg_largeobject_metadata ORDER BY 1",
    "sequences": """
        SELECT schemaname || '.' || sequencename, coalesce(last_value, 0) FROM pg_sequences ORDER BY 1
    """,
    "prepared_xacts": "SELECT gid FROM pg_prepared_xacts ORDER BY 1",
    "replication_slots": "SELECT slot_name FROM pg_replication_slots ORDER BY 1",
    "advisory_locks": "SELECT objid::text FROM pg_locks WHERE locktype = 'advisory' ORDER BY 1",
    "replication_origins": "SELECT roname FROM pg_replication_origin ORDER BY 1",
    # every table, row or advisory lock another backend holds or waits for (an idle pooled session holds none;
    # the shared-catalogue locks of a session being started come and go, and are not an attack's; nor are the
    # locks of autovacuum, whose ANALYZE of a new table writes pg_statistic whenever it runs)
    "locks": """
        SELECT l.locktype, coalesce(l.relation::regclass::text, ''), coalesce(l.objid::text, ''), l.mode, l.granted
        FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
        LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.pid <> pg_backend_pid() AND l.locktype IN ('relation', 'tuple', 'page', 'extend', 'advisory')
          AND NOT coalesce(c.relisshared, false) AND a.backend_type IS DISTINCT FROM 'autovacuum worker'
        ORDER BY 1, 2, 3, 4
    """,
    # temporary relations of any session (the snapshot above leaves pg_temp schemas out: sessions own them)
    "temp_objects": """
        SELECT n.nspname ~ '^pg_temp', c.relname, c.relkind::text FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ~ '^pg_(toast_)?temp_' ORDER BY 1, 2
    """,
    # statistics resets and manual ANALYZE runs (autovacuum's own work, which comes and goes, is not compared)
    "statistics": """
        SELECT 'database', datname, coalesce(stats_reset::text, '') FROM pg_stat_database WHERE datname IS NOT NULL
        UNION ALL SELECT 'analyze', schemaname || '.' || relname, analyze_count::text FROM pg_stat_user_tables
        UNION ALL SELECT 'bgwriter', '', coalesce(stats_reset::text, '') FROM pg_stat_bgwriter
        UNION ALL SELECT 'checkpointer', '', coalesce(stats_reset::text, '') FROM pg_stat_checkpointer
        UNION ALL SELECT 'archiver', '', coalesce(stats_reset::text, '') FROM pg_stat_archiver
        ORDER BY 1, 2
    """,
    # sessions that can start: no connection limit, CONNECT privilege or login was taken away
    "databases": "SELECT datname, datallowconn, datconnlimit, coalesce(datacl::text, '') FROM pg_database ORDER BY 1",
}


@dataclass(frozen=True)
class DatabaseState:
    rows: tuple[tuple[Any, ...], ...]
    schema: tuple[tuple[Any, ...], ...]
    roles: tuple[tuple[Any, ...], ...]
    memberships: tuple[tuple[Any, ...], ...]
    role_settings: tuple[tuple[Any, ...], ...]
    file_settings: tuple[tuple[Any, ...], ...]
    large_objects: tuple[tuple[Any, ...], ...]
    sequences: tuple[tuple[Any, ...], ...]
    prepared_xacts: tuple[tuple[Any, ...], ...]
    replication_slots: tuple[tuple[Any, ...], ...]
    advisory_locks: tuple[tuple[Any, ...], ...]
    replication_origins: tuple[tuple[Any, ...], ...]
    locks: tuple[tuple[Any, ...], ...]
    temp_objects: tuple[tuple[Any, ...], ...]
    statistics: tuple[tuple[Any, ...], ...]
    databases: tuple[tuple[Any, ...], ...]

    def differences(self, other: DatabaseState) -> list[str]:
        """One line per probe that differs, naming the rows only one side has."""
        lines = []
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if mine != theirs:
                gone = sorted(set(mine) - set(theirs), key=repr)[:5]
                new = sorted(set(theirs) - set(mine), key=repr)[:5]
                lines.append(f"{item.name}: only before {gone}; only after {new}")
        return lines


_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY 1, 2
"""


def _table_rows(conn: psycopg.Connection) -> tuple[tuple[Any, ...], ...]:
    """(schema, table, row count, md5 of every row as text) for every user table."""
    digests = []
    for schema, table in conn.execute(_TABLES).fetchall():
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {}.{} AS t"
        ).format(sql.Identifier(schema), sql.Identifier(table))
        row = conn.execute(query).fetchone()
        assert row is not None
        digests.append((schema, table, *row))
    return tuple(digests)


def capture_state(conn: psycopg.Connection) -> DatabaseState:
    """Snapshot the database through `conn` (a superuser connection in autocommit)."""
    values = {name: tuple(tuple(row) for row in conn.execute(query).fetchall()) for name, query in _PROBES.items()}
    return DatabaseState(rows=_table_rows(conn), **values)


def assert_unchanged(before: DatabaseState, conn: psycopg.Connection) -> None:
    after = capture_state(conn)
    differences = before.differences(after)
    assert not differences, "the attack changed the database:\n" + "\n".join(differences)
