"""Round trip: every demo table's data equals, table by table, after backup and restore, and the
restored database keeps its comments, privileges and database-level access rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devtools.native_pg import NativePostgres
from pgbackup.clock import SystemClock
from pgbackup.restore import restore_set
from tests.fast.backup.helpers import backup_env, settings_of

TARGET = "app_roundtrip"
DEMO_TABLES = ["shop.customers", "shop.order_items", "shop.orders", "shop.products"]


@pytest.fixture(scope="module")
def restored(pg: NativePostgres, shared_set_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = settings_of(backup_env(pg, shared_set_dir, "postgres"))
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TARGET)))
    restore_set(settings, selector="latest", target_db=TARGET, source_db="app", force=False, clock=SystemClock())
    try:
        yield TARGET
    finally:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TARGET)))


def rows_of(pg: NativePostgres, database: str, table: str) -> list[tuple[Any, ...]]:
    schema, name = table.split(".")
    with psycopg.connect(pg.dsn("postgres", database)) as conn:
        query = sql.SQL("SELECT * FROM {}.{} ORDER BY 1, 2").format(sql.Identifier(schema), sql.Identifier(name))
        return conn.execute(query).fetchall()


def test_the_demo_data_covers_the_types_that_matter(pg: NativePostgres) -> None:
    """Guard: the round trip is only meaningful if the source holds these shapes of data."""
    with psycopg.connect(pg.dsn("postgres", "app")) as conn:
        types = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema = 'shop'"
            ).fetchall()
        }
        assert {"numeric", "timestamp with time zone", "jsonb", "ARRAY", "text", "boolean"} <= types
        assert conn.execute("SELECT count(*) FROM shop.orders WHERE shipped_at IS NULL").fetchone()[0] > 0  # type: ignore[index]
        assert conn.execute("SELECT max(length(description)) FROM shop.products").fetchone()[0] > 64 * 1024  # type: ignore[index]
        assert conn.execute("SELECT count(*) FROM shop.customers WHERE cardinality(tags) = 2").fetchone()[0] > 0  # type: ignore[index]


@pytest.mark.parametrize("table", DEMO_TABLES)
def test_table_data_is_identical(pg: NativePostgres, restored: str, table: str) -> None:
    source = rows_of(pg, "app", table)
    copy = rows_of(pg, restored, table)
    assert len(copy) == len(source) > 0
    assert copy == source


def test_view_comments_and_privileges_survive(pg: NativePostgres, restored: str) -> None:
    query = """
        SELECT obj_description('shop.orders'::regclass, 'pg_class'),
               col_description('shop.orders'::regclass, 7),
               has_table_privilege('mcp_reader', 'shop.orders', 'SELECT'),
               has_table_privilege('mcp_reader', 'shop.orders', 'INSERT'),
               (SELECT count(*) FROM shop.order_summary),
               (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'shop.orders'::regclass)
    """
    with psycopg.connect(pg.dsn("postgres", "app")) as source, psycopg.connect(pg.dsn("postgres", restored)) as copy:
        assert copy.execute(query).fetchone() == source.execute(query).fetchone()


def test_database_level_access_is_restored(pg: NativePostgres, restored: str) -> None:
    """The source revoked CONNECT and TEMP from PUBLIC; a restored copy must not reopen them."""
    query = """
        SELECT has_database_privilege('mcp_reader', %(db)s, 'CONNECT'),
               has_database_privilege('mcp_reader', %(db)s, 'TEMPORARY'),
               has_database_privilege('app_owner', %(db)s, 'TEMPORARY'),
               has_database_privilege('public', %(db)s, 'CONNECT'),
               (SELECT datdba::regrole::text FROM pg_database WHERE datname = %(db)s)
    """
    with psycopg.connect(pg.dsn()) as conn:
        source = conn.execute(query, {"db": "app"}).fetchone()
        copy = conn.execute(query, {"db": restored}).fetchone()
    assert source == (True, False, True, False, "postgres")
    assert copy == source
