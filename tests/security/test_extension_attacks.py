"""Attacks that need an extension installed: SQL hidden in tablefunc's STABLE crosstab(), and outbound
connections through dblink or postgres_fdw, which the ROLE layer's startup audit must refuse.

Each extension is installed for the test (or module) that needs it and dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp.errors import StartupRefused
from pgmcp.layers import Layers
from pgmcp.role_audit import RoleProblem, audit_role
from tests.security.corpus import ALL_LAYER_NAMES
from tests.security.harness import McpHarness, Servers, harness_settings, text_of

CROSSTAB_LOCK = (
    "SELECT * FROM crosstab('SELECT ''a''::text, ''b''::text, pg_advisory_lock(4242)::text') AS t(r text, c text)"
)
ADVISORY_LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"


@pytest.fixture(scope="module")
def tablefunc(pg: NativePostgres) -> Iterator[None]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION tablefunc")
        try:
            yield
        finally:
            conn.execute("DROP EXTENSION tablefunc")


def test_crosstab_really_hides_a_session_lock(pg: NativePostgres, tablefunc: None) -> None:
    """The control: in a read-only transaction that is rolled back, crosstab's hidden SQL keeps its lock."""
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute("BEGIN READ ONLY")
        conn.execute(CROSSTAB_LOCK)
        conn.rollback()
        assert conn.execute(ADVISORY_LOCKS).fetchone() == (1,)


@pytest.mark.parametrize("active", [ALL_LAYER_NAMES, ("ast",), ("hyg",)], ids=["all", "only-ast", "only-hyg"])
def test_crosstab_lock_does_not_outlive_the_call(
    servers: Servers, superuser: psycopg.Connection, tablefunc: None, active: tuple[str, ...]
) -> None:
    harness = servers.private(active)  # opened after tablefunc: its catalogue knows crosstab
    try:
        result = harness.call("query", sql=CROSSTAB_LOCK)
        if "ast" in active:
            assert result.is_error and "rule: function_denied" in text_of(result), text_of(result)
        assert superuser.execute(ADVISORY_LOCKS).fetchone() == (0,)
        assert harness.session_state() == harness.fresh_session
    finally:
        harness.close()


def _audit(dsn: str) -> list[RoleProblem]:
    async def run() -> list[RoleProblem]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await audit_role(conn)

    return asyncio.run(run())


@pytest.fixture
def dblink(superuser: psycopg.Connection) -> Iterator[None]:
    superuser.execute("CREATE EXTENSION dblink")
    try:
        yield
    finally:
        superuser.execute("DROP EXTENSION dblink")


@pytest.fixture
def foreign_server(superuser: psycopg.Connection) -> Iterator[None]:
    superuser.execute("CREATE EXTENSION postgres_fdw")
    try:
        superuser.execute("CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1')")
        superuser.execute("GRANT USAGE ON FOREIGN SERVER elsewhere TO mcp_reader")
        yield
    finally:
        superuser.execute("DROP EXTENSION postgres_fdw CASCADE")


def test_audit_refuses_dblink(pg: NativePostgres, dblink: None) -> None:
    problems = [problem for problem in _audit(pg.dsn("mcp_reader")) if problem.code == "outbound_connections"]
    assert problems and "dblink" in problems[0].message
    assert "REVOKE EXECUTE ON FUNCTION" in problems[0].hint and "FROM PUBLIC" in problems[0].hint


def test_audit_refuses_a_foreign_server(pg: NativePostgres, foreign_server: None) -> None:
    problems = [problem for problem in _audit(pg.dsn("mcp_reader")) if problem.code == "outbound_connections"]
    assert problems and "server elsewhere" in problems[0].message
    assert "REVOKE USAGE ON SERVER elsewhere" in problems[0].hint


def test_server_refuses_to_start_with_dblink_reachable(pg: NativePostgres, dblink: None) -> None:
    layers = Layers()
    with pytest.raises(StartupRefused) as refused:
        McpHarness(harness_settings(pg, layers), layers)
    assert "dblink" in str(refused.value)
    assert "MCP_DEV_ALLOW_PRIVILEGED_ROLE" in str(refused.value)


def test_development_override_starts_with_a_loud_warning(
    pg: NativePostgres, dblink: None, caplog: pytest.LogCaptureFixture
) -> None:
    layers = Layers()
    harness = McpHarness(harness_settings(pg, layers, dev_allow_privileged_role=True), layers)
    try:
        warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
        assert any("DEVELOPMENT OVERRIDE" in message and "dblink" in message for message in warnings)
        # the other layers still refuse dblink
        result = harness.call("query", sql="SELECT dblink_exec('dbname=app', 'DROP TABLE shop.order_items')")
        assert result.is_error and "rule: function_denied" in text_of(result)
    finally:
        harness.close()
