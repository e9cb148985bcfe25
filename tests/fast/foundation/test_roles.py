"""The roles of the README's Roles table on the native server (the stack tier runs the same cases)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from tests.checks.roles import (
    ROLE_CASES,
    RoleCase,
    check_replicator_only_replicates,
    check_role_attributes,
    role_attributes,
    run_case,
)


@pytest.fixture
def connect(pg: NativePostgres) -> Callable[[str], psycopg.Connection]:
    return lambda role: psycopg.connect(pg.dsn(role))


@pytest.mark.parametrize("case", ROLE_CASES, ids=lambda case: case.id)
def test_role_privileges(connect: Callable[[str], psycopg.Connection], case: RoleCase) -> None:
    assert run_case(connect, case) == case.expect


def test_role_attributes(superuser: psycopg.Connection) -> None:
    check_role_attributes(role_attributes(superuser))


def test_the_replicator_can_only_replicate(pg: NativePostgres) -> None:
    check_replicator_only_replicates(lambda database: pg.dsn("replicator", database=database))


def test_backup_operator_reads_tables_created_later(pg: NativePostgres, superuser: psycopg.Connection) -> None:
    """pg_read_all_data covers tables that did not exist when the role was made."""
    superuser.execute("CREATE TABLE shop.later (x int)")
    try:
        superuser.execute("INSERT INTO shop.later VALUES (7)")
        with psycopg.connect(pg.dsn("backup_operator")) as conn:
            assert conn.execute("SELECT x FROM shop.later").fetchone() == (7,)
    finally:
        superuser.execute("DROP TABLE shop.later")


def test_mcp_reader_cannot_connect_to_postgres_database(pg: NativePostgres) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(pg.dsn("mcp_reader", database="postgres"))


def test_mcp_reader_reads_only_the_granted_schema(pg: NativePostgres, superuser: psycopg.Connection) -> None:
    """SELECT on shop only: a table elsewhere (here in public, made by the superuser) is refused, while a table
    app_owner adds to shop later is readable through the default privileges."""
    superuser.execute("CREATE TABLE public.not_granted (secret text)")
    try:
        with psycopg.connect(pg.dsn("app_owner"), autocommit=True) as owner:
            owner.execute("CREATE TABLE shop.added_later (x int)")
        with psycopg.connect(pg.dsn("mcp_reader"), autocommit=True) as reader:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("SELECT * FROM public.not_granted")
            assert reader.execute("SELECT count(*) FROM shop.added_later").fetchone() == (0,)
    finally:
        superuser.execute("DROP TABLE public.not_granted")
        superuser.execute("DROP TABLE IF EXISTS shop.added_later")
