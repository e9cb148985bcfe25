"""The read-only promise, end to end through the `query` and `explain` tools: a representative set of the research
corpus's write attempts (sections A-C) is refused and a superuser then confirms that nothing changed; the layers
this server implements (RO, ONE, TMO, HYG) each hold on their own; rich read-only SQL keeps working.
The full adversarial suite lives in tests/security/."""

from __future__ import annotations

import dataclasses
import time

import anyio
import psycopg
import pytest

from pgmcp import transaction
from pgmcp.config import Settings
from pgmcp.db import Database
from pgmcp.errors import QueryTimeout
from pgmcp.execute import Executor
from pgmcp.layers import ALL_LAYERS, Layers
from tests.fast.mcp.helpers import Connect, call_checked, error_text, rows_of
from tests.helpers import wait_until

pytestmark = pytest.mark.anyio

STATE_SQL = """
SELECT (SELECT count(*) FROM shop.orders),
       (SELECT sum(hashtext(o::text)) FROM shop.orders o),
       (SELECT sum(hashtext(c::text)) FROM shop.customers c),
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'shop'::regnamespace),
       (SELECT last_value FROM shop.orders_order_id_seq),
       (SELECT rolconfig::text FROM pg_roles WHERE rolname = 'mcp_reader'),
       (SELECT count(*) FROM pg_largeobject_metadata),
       (SELECT count(*) FROM pg_collation),
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename <> 'mcp_reader')
"""

WRITE_ATTEMPTS = {
    "A1-commit-drop": "SELECT 1; COMMIT; DROP SCHEMA shop CASCADE;",
    "A2-datadog-poc": "COMMIT; INSERT INTO shop.orders (customer_id, status, placed_at) VALUES (1, 'paid', now())",
    "A3-rollback-drop": "ROLLBACK; DROP TABLE shop.orders;",
    "A4-read-write-delete": "SET TRANSACTION READ WRITE; DELETE FROM shop.orders",
    "A5-begin-read-write": "BEGIN READ WRITE; UPDATE shop.orders SET total = 0; COMMIT;",
    "A6-session-characteristics": "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "A7-default-read-only-off": "SET default_transaction_read_only = off; COMMIT; DELETE FROM shop.orders",
    "A8-comment-commit": "/* hi */ COMMIT; DELETE FROM shop.orders",
    "A8-line-comment": "-- x\nCOMMIT; DELETE FROM shop.orders",
    "A8-dollar-quote": "SELECT $$;$$; DELETE FROM shop.orders",
    "B9-writable-cte": "WITH d AS (DELETE FROM shop.orders RETURNING *) SELECT count(*) FROM d",
    "B10-select-into": "SELECT * INTO TEMP stolen FROM shop.customers",
    "B10-create-table-as": "CREATE TABLE shop.stolen AS SELECT * FROM shop.customers",
    "B11-explain-analyze-delete": "EXPLAIN ANALYZE DELETE FROM shop.orders",
    "B13-for-update": "SELECT * FROM shop.orders FOR UPDATE",
    "B14-lock": "LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE",
    "B15-prepare": "PREPARE p AS DELETE FROM shop.orders",
    "B16-do-block": "DO $$BEGIN EXECUTE 'DELETE FROM shop.orders'; END$$",
    "B17-query-to-xml": "SELECT query_to_xml('select pg_read_file(''/etc/passwd'')', true, false, '')",
    "C18-sleep": "SELECT pg_sleep(3600)",
    "C19-terminate": "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
    "C20-set-config": "SELECT set_config('statement_timeout', '0', false)",
    "C21-advisory-lock": "SELECT pg_advisory_lock(42)",
    "C22-nextval": "SELECT nextval('shop.orders_order_id_seq')",
    "C23-lo-import": "SELECT lo_import('/etc/passwd')",
    "C24-read-file-in-from": "SELECT * FROM pg_read_file('/etc/passwd')",
    "C25-copy-program": "COPY (SELECT 1) TO PROGRAM 'id'",
    "C27-import-collations": "SELECT pg_import_system_collations('pg_catalog')",
    "C28-notify": "NOTIFY ch, 'x'",
}


def database_state(superuser: psycopg.Connection) -> tuple[object, ...]:
    row = superuser.execute(STATE_SQL).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("sql", WRITE_ATTEMPTS.values(), ids=WRITE_ATTEMPTS.keys())
async def test_write_attempts_are_rejected_and_change_nothing(
    connect: Connect, superuser: psycopg.Connection, sql: str
) -> None:
    before = database_state(superuser)
    async with connect() as client:
        message = error_text(await client.call_tool("query", {"sql": sql}))
        explained = error_text(await client.call_tool("explain", {"sql": sql}))
    assert message.startswith("query rejected: ") and "\nrule: " in message
    assert explained.startswith("query rejected: ")
    assert database_state(superuser) == before


@pytest.mark.parametrize("sql", ["(ANALYZE) DELETE FROM shop.orders", "ANALYZE DELETE FROM shop.orders"])
async def test_explain_cannot_be_smuggled_into_a_write(
    connect: Connect, superuser: psycopg.Connection, sql: str
) -> None:
    before = database_state(superuser)
    async with connect(allow_explain_analyze=True) as client:
        message = error_text(await client.call_tool("explain", {"sql": sql, "analyze": True}))
    assert message.startswith("query rejected: ")
    assert database_state(superuser) == before


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("WITH d AS (DELETE FROM shop.orders RETURNING *) SELECT count(*) FROM d", "25006"),
        ("SELECT * FROM shop.orders FOR UPDATE", "25006"),
    ],
    ids=["writable-cte", "for-update"],
)
async def test_ro_alone_stops_writes_inside_one_statement(
    connect: Connect, superuser: psycopg.Connection, sql: str, sqlstate: str
) -> None:
    before = database_state(superuser)
    async with connect(layers=Layers.only("ro")) as client:
        message = error_text(await client.call_tool("query", {"sql": sql}))
    assert f"(SQLSTATE {sqlstate})" in message and "read-only transaction" in message
    assert database_state(superuser) == before


async def test_without_one_a_second_statement_reaches_the_database(
    connect: Connect, superuser: psycopg.Connection
) -> None:
    """The tests-only path without ONE is faithful: the text goes over the simple protocol and both statements
    run (the advisory lock is session-level, so it outlives the rollback; HYG is off to keep it)."""
    layers = Layers(one=False, ast=False, hyg=False)
    async with connect(layers=layers, pool_min_size=1, pool_max_size=1) as client:
        structured = await call_checked(client, "query", {"sql": "SELECT 1 AS first; SELECT pg_advisory_lock(4343)"})
        held = superuser.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4343 AND granted"
        ).fetchone()
    assert rows_of(structured) == [[1]] and held == (1,)


async def test_without_one_a_stacked_statements_error_is_the_answer(
    connect: Connect, superuser: psycopg.Connection
) -> None:
    """psycopg's stream() drains the results after the first one in silence; without ONE the server reports the
    first error among them, so the database's own refusal of a stacked write is what the call says."""
    before = database_state(superuser)
    async with connect(layers=Layers(one=False, ast=False)) as client:
        message = error_text(await client.call_tool("query", {"sql": "SELECT 1; DELETE FROM shop.orders"}))
        after = await call_checked(client, "query", {"sql": "SELECT 2"})
    assert "(SQLSTATE 25006)" in message or "(SQLSTATE 42501)" in message, message
    assert rows_of(after) == [[2]] and database_state(superuser) == before


async def test_cap_alone_still_streams(connect: Connect) -> None:
    """Without ONE the statement still streams in chunks, so CAP stops a result far larger than memory."""
    async with connect(layers=Layers.only("cap"), max_rows=3) as client:
        structured = await call_checked(client, "query", {"sql": "SELECT generate_series(1, 1000000000)"})
    assert rows_of(structured) == [[1], [2], [3]] and structured["truncated_reason"] == "max_rows"


async def test_one_alone_refuses_a_second_statement(connect: Connect, superuser: psycopg.Connection) -> None:
    before = database_state(superuser)
    async with connect(layers=Layers.only("one")) as client:
        message = error_text(await client.call_tool("query", {"sql": "SELECT 1; DELETE FROM shop.orders"}))
    assert "rule: not_single_statement" in message
    assert database_state(superuser) == before


async def test_pg_sleep_is_refused_by_the_guard(connect: Connect) -> None:
    async with connect() as client:
        message = error_text(await client.call_tool("query", {"sql": "SELECT pg_sleep(60)"}))
    assert "rule: function_denied" in message


# pg_sleep is on the guard's deny-list: AST is off here so the statement reaches the database and TMO must act
@pytest.mark.parametrize("layers", [Layers(ast=False), Layers.only("tmo")], ids=["other-layers-on", "tmo-alone"])
async def test_pg_sleep_is_cancelled_by_the_server_side_timeout(
    connect: Connect, superuser: psycopg.Connection, layers: Layers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watchdog would give the same 57014 error: hold it back 30 s, so that only the server-side
    # statement_timeout can end the sleep sooner. The bound below tells the two apart; it measures nothing.
    monkeypatch.setattr(transaction, "WATCHDOG_GRACE_S", 30.0)
    sleeper = "SELECT pg_sleep(60) /* tmo probe */"
    async with connect(layers=layers, statement_timeout_ms=300, pool_timeout_ms=200, lock_timeout_ms=100) as client:
        started = time.monotonic()
        message = error_text(await client.call_tool("query", {"sql": sleeper}))
        ended_by_the_server = time.monotonic() - started < transaction.WATCHDOG_GRACE_S
        after = await call_checked(client, "query", {"sql": "SELECT 1"})
    assert ended_by_the_server
    assert message.startswith("query timed out: it ran longer than the 300 ms statement timeout")
    assert "(SQLSTATE 57014)" in message and "hint: " in message
    assert rows_of(after) == [[1]]
    running = superuser.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%tmo probe%' "
        "AND pid <> pg_backend_pid()"
    ).fetchone()
    assert running == (0,)


async def test_the_watchdog_cancels_what_the_server_did_not(reader_settings: Settings) -> None:
    settings = dataclasses.replace(reader_settings, statement_timeout_ms=200, pool_timeout_ms=100, lock_timeout_ms=100)
    cancels: list[float] = []
    executor = Executor(settings, ALL_LAYERS, Database(settings, ALL_LAYERS), on_watchdog=lambda: cancels.append(1))
    async with await psycopg.AsyncConnection.connect(**settings.database_conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled):
            # no SET LOCAL statement_timeout on this connection: only the watchdog can stop the sleep
            await executor.watched(conn, conn.execute("SELECT pg_sleep(30)"))
        assert (await (await conn.execute("SELECT 7")).fetchone()) == (7,)
    assert cancels == [1] and executor.watchdog_cancels == 1


async def test_the_watchdog_abandons_a_connection_the_cancel_request_cannot_stop(
    reader_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work that a cancel request cannot reach (here a wait outside the database) is given up at the abandon
    mark: a timeout error that says so, the connection closed (the pool replaces it), the cancel counted once."""
    monkeypatch.setattr(transaction, "WATCHDOG_GRACE_S", 0.1)
    monkeypatch.setattr(transaction, "WATCHDOG_ABANDON_S", 0.2)
    settings = dataclasses.replace(reader_settings, statement_timeout_ms=200, pool_timeout_ms=100, lock_timeout_ms=100)
    executor = Executor(settings, ALL_LAYERS, Database(settings, ALL_LAYERS))
    conn = await psycopg.AsyncConnection.connect(**settings.database_conninfo(), autocommit=True)
    try:
        with pytest.raises(QueryTimeout) as caught:
            await executor.watched(conn, anyio.sleep(30))
        assert conn.closed
    finally:
        await conn.close()
    assert caught.value.sqlstate == "57014" and "did not stop when cancelled" in caught.value.message
    assert executor.watchdog_cancels == 1


async def test_the_watchdog_leaves_a_call_that_ends_in_time_alone(reader_settings: Settings) -> None:
    settings = dataclasses.replace(reader_settings, statement_timeout_ms=200, pool_timeout_ms=100, lock_timeout_ms=100)
    executor = Executor(settings, ALL_LAYERS, Database(settings, ALL_LAYERS))
    async with await psycopg.AsyncConnection.connect(**settings.database_conninfo(), autocommit=True) as conn:
        for _ in range(3):
            cursor = await executor.watched(conn, conn.execute("SELECT pg_sleep(0.1), 7"))
            assert (await cursor.fetchone()) == ("", 7)
        with pytest.raises(ZeroDivisionError):  # the work's own error leaves as it is, not as a timeout
            await executor.watched(conn, _divide_by_zero())
        await anyio.sleep(0.4)  # past the watchdog's marks: nothing fires for calls that are over
        assert not conn.closed and (await (await conn.execute("SELECT 8")).fetchone()) == (8,)
    assert executor.watchdog_cancels == 0


async def _divide_by_zero() -> None:
    await anyio.sleep(0)
    raise ZeroDivisionError


@pytest.mark.parametrize("hyg", [True, False], ids=["with-hyg", "without-hyg"])
async def test_hyg_releases_session_state_between_calls(
    connect: Connect, superuser: psycopg.Connection, hyg: bool
) -> None:
    """A session-level advisory lock survives ROLLBACK; only the reset (DISCARD ALL) on return releases it."""
    layers = Layers(ast=False, hyg=hyg)
    async with connect(layers=layers, pool_min_size=1, pool_max_size=1) as client:
        await call_checked(client, "query", {"sql": "SELECT pg_advisory_lock(4242)"})
        await call_checked(client, "query", {"sql": "SELECT 1"})  # the same, only, pooled connection

        def held() -> bool:
            row = superuser.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted"
            ).fetchone()
            return row == (1,)

        if hyg:
            wait_until(lambda: not held(), timeout=10, what="the advisory lock to be released by DISCARD ALL")
        else:
            assert held()
        prepared = await call_checked(client, "query", {"sql": "SELECT count(*) FROM pg_prepared_statements"})
    assert rows_of(prepared) == [[0]]
    wait_until(lambda: not held(), timeout=10, what="the advisory lock to go with its connection")


LEGITIMATE = {
    "window": "SELECT customer_id, total, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) FROM shop.orders",
    "within-group": "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM shop.orders",
    "recursive-cte": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
    "SELECT sum(n) FROM r",
    "lateral": "SELECT c.customer_id, o.total FROM shop.customers c CROSS JOIN LATERAL "
    "(SELECT total FROM shop.orders WHERE customer_id = c.customer_id ORDER BY total DESC LIMIT 1) o",
    "generate-series": "SELECT d::date, count(o.order_id) FROM generate_series('2024-01-01'::date, '2024-01-07', "
    "'1 day') d LEFT JOIN shop.orders o ON o.placed_at::date = d::date GROUP BY 1 ORDER BY 1",
    "json": "SELECT preferences->>'lang' AS lang, count(*) FROM shop.customers WHERE preferences ? 'lang' "
    "GROUP BY 1 ORDER BY 1",
    "set-operations": "SELECT country FROM shop.customers INTERSECT SELECT 'DE' EXCEPT SELECT 'FR'",
    "view": "SELECT status, avg(items) FROM shop.order_summary GROUP BY status",
    "filter-and-grouping-sets": "SELECT status, count(*) FILTER (WHERE total > 100) FROM shop.orders "
    "GROUP BY ROLLUP (status)",
    "random-sample": "SELECT order_id FROM shop.orders ORDER BY random() LIMIT 3",
}


@pytest.mark.parametrize("sql", LEGITIMATE.values(), ids=LEGITIMATE.keys())
async def test_rich_read_only_sql_works(connect: Connect, sql: str) -> None:
    async with connect() as client:
        structured = await call_checked(client, "query", {"sql": sql})
    assert structured["row_count"] > 0


async def test_concurrent_calls_share_the_pool(connect: Connect) -> None:
    results: list[int] = []
    async with connect(pool_min_size=1, pool_max_size=3) as client:

        async def one(value: int) -> None:
            structured = await call_checked(client, "query", {"sql": "SELECT $1::int", "params": [value]})
            results.append(int(rows_of(structured)[0][0]))

        async with anyio.create_task_group() as group:
            for value in range(12):
                group.start_soon(one, value)
    assert sorted(results) == list(range(12))
