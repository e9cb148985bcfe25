"""The over-blocking corpus: rich, legitimate analytical SQL must pass the guard and run through the server.

Every query runs through the real server with every layer on, as mcp_reader, against the demo shop, with
a set of contrib extensions installed (their non-volatile functions and operators must be usable). The
extensions are installed for this module only and dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pglast
import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp.guard import validate
from pgmcp.layers import Layers
from pgmcp.policy import FunctionPolicy, load_function_policy
from tests.security.harness import McpHarness, Servers, text_of
from tests.security.legit_corpus import EXTENSIONS, LEGIT


@pytest.fixture(scope="module")
def extensions(pg: NativePostgres) -> Iterator[None]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for name in EXTENSIONS:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
        try:
            yield
        finally:
            for name in reversed(EXTENSIONS):
                conn.execute(f"DROP EXTENSION IF EXISTS {name} CASCADE")


@pytest.fixture(scope="module")
def policy_with_extensions(pg: NativePostgres, extensions: None) -> FunctionPolicy:
    async def load() -> FunctionPolicy:
        async with await psycopg.AsyncConnection.connect(pg.dsn("mcp_reader")) as conn:
            return await load_function_policy(conn)

    return asyncio.run(load())


@pytest.fixture(scope="module")
def server(servers: Servers, extensions: None) -> Iterator[McpHarness]:
    """Every layer on; opened after the extensions, so its function policy knows their functions."""
    harness = servers.private(("role", "ro", "one", "ast", "tmo", "cap", "hyg"))
    try:
        yield harness
    finally:
        harness.close()


def test_the_corpus_is_large_enough() -> None:
    assert len(LEGIT) >= 50


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_guard_accepts(policy_with_extensions: FunctionPolicy, name: str) -> None:
    validated = validate(LEGIT[name], policy_with_extensions, Layers())
    assert validated.sql == LEGIT[name]


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_server_runs_it(server: McpHarness, name: str) -> None:
    result = server.call("query", sql=LEGIT[name])
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["row_count"] >= 1


def test_bound_parameters(server: McpHarness) -> None:
    result = server.call(
        "query", sql="SELECT order_id FROM shop.orders WHERE status = $1 AND total > $2 LIMIT 3", params=["paid", 10]
    )
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["row_count"] == 3


@pytest.mark.parametrize("name", ["window", "cte", "json"])
def test_explain_accepts_rich_sql(server: McpHarness, name: str) -> None:
    sql = {"window": LEGIT["rank"], "cte": LEGIT["recursive-calendar"], "json": LEGIT["json-table"]}[name]
    result = server.call("explain", sql=sql)
    assert not result.is_error, text_of(result)


@pytest.mark.parametrize(
    "name", [*sorted(LEGIT)[:20], "trailing-comment", "trailing-semicolon", "leading-comment", "trailing-block"]
)
def test_explain_prefix_wraps_exactly_the_validated_statement(
    policy_with_extensions: FunctionPolicy, name: str
) -> None:
    """The explain tool validates the statement alone, then sends `EXPLAIN (...) <statement>`: that text must
    parse as one EXPLAIN of the very same query, whatever the statement ends or starts with."""
    extra = {
        "trailing-comment": "SELECT 1 -- and then",
        "trailing-semicolon": "SELECT 1 ;",
        "leading-comment": "/* why */ SELECT 1",
        "trailing-block": "SELECT 1 /* done */",
    }
    sql = extra.get(name) or LEGIT[name]
    validate(sql, policy_with_extensions, Layers())
    for options in ("FORMAT JSON", "ANALYZE, BUFFERS, FORMAT JSON"):
        (statement,) = pglast.parse_sql(f"EXPLAIN ({options}) {sql}")
        assert isinstance(statement.stmt, pglast.ast.ExplainStmt)
        (alone,) = pglast.parse_sql(sql)
        assert statement.stmt.query == alone.stmt
