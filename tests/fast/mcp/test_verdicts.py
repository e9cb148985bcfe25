"""Memoised guard verdicts: the same answer as the guard, fresh errors every time, bounded."""

from __future__ import annotations

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp import guard, policy, verdicts
from pgmcp.errors import DatabaseUnavailable, QueryRejected
from pgmcp.layers import ALL_LAYERS
from pgmcp.verdicts import Verdicts, placeholders


@pytest.fixture
async def function_policy(pg: NativePostgres) -> policy.FunctionPolicy:
    async with await psycopg.AsyncConnection.connect(pg.dsn("mcp_reader"), autocommit=True) as conn:
        return await policy.load_function_policy(conn)


@pytest.mark.anyio
async def test_verdicts_match_the_guard_and_are_reused(function_policy: policy.FunctionPolicy) -> None:
    judge = Verdicts(ALL_LAYERS, explain_analyze=False, policy=function_policy)
    accepted = judge.judge("SELECT * FROM shop.orders WHERE order_id = $2 AND customer_id = $1")
    assert accepted.query() == guard.validate(
        "SELECT * FROM shop.orders WHERE order_id = $2 AND customer_id = $1", function_policy, ALL_LAYERS
    )
    assert accepted.placeholders == 2
    assert judge.judge("SELECT * FROM shop.orders WHERE order_id = $2 AND customer_id = $1") is accepted
    rejected = judge.judge("DELETE FROM shop.orders")
    with pytest.raises(QueryRejected) as direct:
        guard.validate("DELETE FROM shop.orders", function_policy, ALL_LAYERS)
    with pytest.raises(QueryRejected) as first:
        rejected.query()
    with pytest.raises(QueryRejected) as second:
        rejected.query()
    assert first.value is not second.value  # a fresh exception each time, never one raised twice
    assert (first.value.rule, first.value.message) == (direct.value.rule, direct.value.message)
    assert first.value.fingerprint == direct.value.fingerprint is not None


@pytest.mark.anyio
async def test_the_operators_explain_analyze_setting_reaches_the_guard(function_policy: policy.FunctionPolicy) -> None:
    sql = "EXPLAIN ANALYZE SELECT 1"
    allowed = Verdicts(ALL_LAYERS, explain_analyze=True, policy=function_policy).judge(sql)
    assert allowed.query().kind == "explain"
    with pytest.raises(QueryRejected) as refused:
        Verdicts(ALL_LAYERS, explain_analyze=False, policy=function_policy).judge(sql).query()
    assert refused.value.rule == "explain_analyze"


@pytest.mark.anyio
async def test_no_verdict_before_the_policy_is_loaded(function_policy: policy.FunctionPolicy) -> None:
    judge = Verdicts(ALL_LAYERS, explain_analyze=False)
    with pytest.raises(DatabaseUnavailable, match="has not finished starting"):
        judge.judge("SELECT 1")
    judge.load(function_policy)
    assert judge.judge("SELECT 1").query().kind == "select"


@pytest.mark.anyio
async def test_the_cache_is_bounded(function_policy: policy.FunctionPolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdicts, "MAX_ENTRIES", 3)
    judge = Verdicts(ALL_LAYERS, explain_analyze=False, policy=function_policy)
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
