"""Memoised guard verdicts: the same answer as the guard, fresh errors every time, bounded."""

from __future__ import annotations

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp import catalog, guard, verdicts
from pgmcp.layers import ALL_LAYERS
from pgmcp.verdicts import Verdicts, placeholders


@pytest.fixture
async def function_catalog(pg: NativePostgres) -> catalog.FunctionCatalog:
    async with await psycopg.AsyncConnection.connect(pg.dsn("mcp_reader"), autocommit=True) as conn:
        return await catalog.load_function_catalog(conn)


@pytest.mark.anyio
async def test_verdicts_match_the_guard_and_are_reused(function_catalog: catalog.FunctionCatalog) -> None:
    judge = Verdicts(function_catalog, ALL_LAYERS)
    accepted = judge.judge("SELECT * FROM shop.orders WHERE order_id = $2 AND customer_id = $1")
    assert accepted.accepted == guard.validate(
        "SELECT * FROM shop.orders WHERE order_id = $2 AND customer_id = $1", function_catalog, ALL_LAYERS
    )
    assert accepted.placeholders == 2 and accepted.rejected is None
    assert judge.judge("SELECT * FROM shop.orders WHERE order_id = $2 AND customer_id = $1") is accepted
    rejected = judge.judge("DELETE FROM shop.orders")
    with pytest.raises(guard.QueryRejected) as direct:
        guard.validate("DELETE FROM shop.orders", function_catalog, ALL_LAYERS)
    assert rejected.accepted is None and rejected.rejected == (direct.value.rule, direct.value.message)


@pytest.mark.anyio
async def test_the_cache_is_bounded(function_catalog: catalog.FunctionCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdicts, "MAX_ENTRIES", 3)
    judge = Verdicts(function_catalog, ALL_LAYERS)
    first = judge.judge("SELECT 1")
    for value in (2, 3, 4):
        judge.judge(f"SELECT {value}")
    assert judge.judge("SELECT 1") is not first  # evicted, judged again
    long_text = "SELECT 1 " + "-" * verdicts.MAX_CACHED_CHARS
    assert judge.judge(long_text) is not judge.judge(long_text)  # too long to keep


@pytest.mark.parametrize(
    ("sql", "expected"),
    [("SELECT 1", 0), ("SELECT $1, $10", 10), ("SELECT '$5' -- $6\n, $2", 2), ("SELECT 'unterminated", 0)],
)
def test_placeholders(sql: str, expected: int) -> None:
    assert placeholders(sql) == expected
