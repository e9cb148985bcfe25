"""Resource abuse (corpus section E): row floods, materialising and endless queries, huge values, a lock queue
and a flood of parallel heavy calls. The server must answer with capped results or clear timeouts, keep its
memory bounded, stay responsive, and leave no runaway backend or temporary file behind.

Runs with every layer on and with the layer that should stop each class alone (CAP for row floods, TMO for
work that never yields a row). The harness's statement timeout is 1.5 s.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devtools.native_pg import NativePostgres
from pgmcp.layers import Layers
from tests.helpers import wait_until
from tests.security.corpus import ALL_LAYER_NAMES
from tests.security.harness import McpHarness, Servers, harness_settings, text_of

MAX_ROWS = 100  # the harness's Settings default

ACTIVE_SQL = (
    "SELECT pid, usename, state, left(query, 60) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'"
)

ROW_FLOODS = {
    "cartesian": "SELECT * FROM shop.order_items a CROSS JOIN shop.order_items b",
    "cte": "WITH t AS (SELECT * FROM shop.order_items a CROSS JOIN shop.orders b) SELECT * FROM t",
    "table": "TABLE shop.order_items",
    "parenthesised": "(SELECT * FROM shop.order_items)",
    "trailing-comment": "SELECT * FROM shop.order_items --",
    "limit-in-a-literal": "SELECT * FROM shop.orders WHERE coalesce(note, '') <> 'LIMIT'",
    "inner-limit": "SELECT * FROM (SELECT * FROM shop.order_items LIMIT 1000000000) s",
    "values": "SELECT * FROM (VALUES (1), (2)) v(x), generate_series(1, 1000) g",
    "streaming-series": "SELECT generate_series(1, 10000000000)",
    "union": "SELECT order_id FROM shop.orders UNION ALL SELECT order_id FROM shop.orders",
}

ENDLESS = {
    "materialised-series": "SELECT * FROM generate_series(1, 10000000000)",
    "endless-recursion": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "spilling-sort": "SELECT md5(g::text) FROM generate_series(1, 1000000000) g ORDER BY 1",
    "cartesian-count": "SELECT count(*) FROM shop.orders a, shop.orders b, shop.orders c",
}

HUGE_VALUES = {
    "repeat-500MB": "SELECT repeat('x', 500000000)",
    "string-agg-900MB": "SELECT string_agg(repeat('x', 1000000), '') FROM generate_series(1, 900)",
}


def peak_rss_reset() -> None:
    """Reset this process's peak resident set size (Linux: write 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.fixture(scope="module")
def checker(pg: NativePostgres) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn


def no_runaway(checker: psycopg.Connection) -> None:
    """Every backend but the checker is idle again; and no temporary file is left."""
    wait_until(
        lambda: checker.execute(ACTIVE_SQL).fetchall() == [],
        timeout=10,
        what="every backend to be idle after the call",
        describe=lambda: repr(checker.execute(ACTIVE_SQL).fetchall()),
    )
    assert checker.execute("SELECT count(*) FROM pg_ls_tmpdir()").fetchone() == (0,)


# With CAP alone nothing else ends a query, so these floods are finite (two million rows, about 60 MB as
# Python objects): enough to show whether rows are streamed and dropped, or buffered whole.
BOUNDED_FLOODS = {
    "cartesian": "SELECT * FROM shop.orders a CROSS JOIN generate_series(1, 1000) g",
    "streaming-series": "SELECT generate_series(1, 2000000)",
    "cte": "WITH t AS (SELECT * FROM shop.order_items a CROSS JOIN generate_series(1, 400) g) SELECT * FROM t",
}
STREAMING_GROWTH_LIMIT = 48 * 1024**2


def assert_capped(result: Any) -> None:
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None
    assert (structured["row_count"], structured["truncated"], structured["truncated_reason"]) == (
        MAX_ROWS,
        True,
        "max_rows",
    )
    assert "truncated" in text_of(result)


@pytest.mark.parametrize("name", sorted(ROW_FLOODS))
def test_row_floods_are_capped(servers: Servers, checker: psycopg.Connection, name: str) -> None:
    assert_capped(servers.get(ALL_LAYER_NAMES).call("query", sql=ROW_FLOODS[name]))
    no_runaway(checker)


@pytest.mark.parametrize("name", sorted(BOUNDED_FLOODS))
def test_cap_alone_streams_and_stops(servers: Servers, checker: psycopg.Connection, name: str) -> None:
    """CAP is "capped while streaming": the rows past the limit are never held, so memory does not grow with
    the size of the result, whatever the other layers do."""
    harness = servers.get(("cap",))
    peak_rss_reset()
    before = peak_rss_bytes()
    result = harness.call("query", sql=BOUNDED_FLOODS[name])
    growth = peak_rss_bytes() - before
    assert_capped(result)
    assert growth < STREAMING_GROWTH_LIMIT, f"peak memory grew by {growth / 1024**2:.0f} MiB for a capped result"
    no_runaway(checker)


@pytest.mark.parametrize("active", [ALL_LAYER_NAMES, ("tmo",)], ids=["all", "only-tmo"])
@pytest.mark.parametrize("name", sorted(ENDLESS))
def test_endless_work_times_out(
    servers: Servers, checker: psycopg.Connection, name: str, active: tuple[str, ...]
) -> None:
    result = servers.get(active).call("query", sql=ENDLESS[name])
    assert result.is_error
    assert "timed out" in text_of(result) and "57014" in text_of(result)
    no_runaway(checker)


@pytest.mark.parametrize("active", [ALL_LAYER_NAMES, ("tmo",)], ids=["all", "only-tmo"])
@pytest.mark.parametrize("name", sorted(HUGE_VALUES))
def test_huge_values_keep_memory_bounded(
    servers: Servers, checker: psycopg.Connection, name: str, active: tuple[str, ...]
) -> None:
    """One value is received whole (libpq has no partial rows), so CAP can cut it but not avoid holding it; the
    statement timeout ends the call. The bound is PostgreSQL's own: no value exceeds 1 GB, and one call holds at
    most about two copies of what it received (measured: 900 MB cost 1.7 GiB at the peak). docs/security.md
    explains how to size the container for it."""
    harness = servers.get(active)
    peak_rss_reset()
    before = peak_rss_bytes()
    result = harness.call("query", sql=HUGE_VALUES[name])
    growth = peak_rss_bytes() - before
    assert growth < 2 * 1024**3, f"peak memory grew by {growth / 1024**2:.0f} MiB"
    if result.is_error:
        assert "57014" in text_of(result), text_of(result)
    else:
        structured = result.structured_content
        assert structured is not None and structured["truncated"] and structured["bytes"] <= 256 * 1024
    no_runaway(checker)
    assert not harness.call("query", sql="SELECT 1").is_error


def test_cap_cuts_a_large_cell(servers: Servers, checker: psycopg.Connection) -> None:
    result = servers.get(("cap",)).call("query", sql="SELECT repeat('x', 50000000) AS big, 1 AS small")
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None
    assert structured["truncated"] and structured["truncated_reason"] == "max_cell_bytes"
    assert structured["bytes"] <= 256 * 1024
    assert len(structured["rows"][0][0].encode()) <= 8 * 1024 + len("…".encode())
    no_runaway(checker)


@pytest.mark.parametrize(
    ("active", "agent_sql"),
    [
        (ALL_LAYER_NAMES, "SELECT count(*) FROM shop.orders a, shop.orders b, shop.orders c"),
        (("tmo",), "SELECT pg_sleep(300) FROM shop.orders LIMIT 1"),
    ],
    ids=["all", "only-tmo"],
)
def test_lock_queue_drains(
    servers: Servers, pg: NativePostgres, checker: psycopg.Connection, active: tuple[str, ...], agent_sql: str
) -> None:
    """Corpus 39: a migration's ACCESS EXCLUSIVE lock queues behind the agent's query; the agent's statement
    timeout ends it, so the migration (waiting up to 30 s) gets its lock."""
    harness = servers.get(active)
    outcome: list[Any] = []
    agent = threading.Thread(target=lambda: outcome.append(harness.call("query", sql=agent_sql)))
    agent.start()
    try:
        wait_until(
            lambda: checker.execute(
                "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.relation = 'shop.orders'::regclass AND a.usename <> 'postgres' OR "
                "(l.relation = 'shop.orders'::regclass AND a.query = %s)",
                (agent_sql,),
            ).fetchone(),
            timeout=10,
            what="the agent's query to hold its lock on shop.orders",
        )
        with psycopg.connect(pg.dsn()) as migration:
            migration.execute("SET lock_timeout = '30s'")
            migration.execute("LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE")
            migration.rollback()
    finally:
        agent.join(timeout=60)
    assert outcome and outcome[0].is_error and "57014" in text_of(outcome[0])
    no_runaway(checker)


@pytest.fixture
def flood_reader(checker: psycopg.Connection) -> Iterator[tuple[str, str]]:
    """A reader like mcp_reader whose CONNECTION LIMIT is exactly a pool of four plus one diagnosis connection:
    any connection the server opens beyond that is refused by PostgreSQL and shows in the answers."""
    name, password = f"flood_{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    ident = sql.Identifier(name)
    checker.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT 5").format(ident, sql.Literal(password)))
    try:
        for grant in (
            "ALTER ROLE {} SET default_transaction_read_only = on",
            "GRANT CONNECT ON DATABASE app TO {}",
            "GRANT USAGE ON SCHEMA shop TO {}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {}",
        ):
            checker.execute(sql.SQL(grant).format(ident))
        yield name, password
    finally:
        checker.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        checker.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_fifty_parallel_heavy_calls(
    pg: NativePostgres, checker: psycopg.Connection, flood_reader: tuple[str, str]
) -> None:
    """Corpus 40: fifty heavy calls at once on a pool of four. The server may use its pool plus the one direct
    connection pgmcp.db opens to diagnose a pool timeout, no more. Every call must end with a result, a
    timeout, or "database busy" with a retry hint; none may hang; memory stays bounded; the server answers
    normally afterwards."""
    layers = Layers()
    user, password = flood_reader
    settings = harness_settings(
        pg, layers, database_user=user, database_password=password, pool_min_size=1, pool_max_size=4
    )
    harness = McpHarness(settings, layers)
    try:

        def running(role: str) -> int:
            row = checker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active' "
                "AND query LIKE 'SELECT count(*) FROM shop.orders a, shop.orders b%%'",
                [role],
            ).fetchone()
            return int(row[0]) if row else 0

        def other_application() -> tuple[Any, ...] | None:
            with psycopg.connect(pg.dsn("app_owner"), connect_timeout=10) as conn:
                return conn.execute("SELECT 1").fetchone()

        async def flood() -> tuple[list[Any], Any, tuple[Any, ...] | None]:
            calls = [
                asyncio.ensure_future(
                    harness.client.call_tool("query", {"sql": "SELECT count(*) FROM shop.orders a, shop.orders b"})
                )
                for _ in range(50)
            ]
            # the flood is under way: confirmed, not assumed, before probing (every pooled connection is running
            # a heavy query and the rest of the calls are queued)
            await asyncio.to_thread(
                wait_until, lambda: running(user) == 4, timeout=30, interval=0.05, what="the pool of 4 to be saturated"
            )
            # while it lasts, the server still answers (a result or "database busy" with a retry hint, not a
            # hang), and the database still serves other applications
            probe, bystander = await asyncio.gather(
                harness.client.call_tool("list_schemas", {}), asyncio.to_thread(other_application)
            )
            return await asyncio.gather(*calls), probe, bystander

        peak_rss_reset()
        before = peak_rss_bytes()
        results, probe, bystander = harness.run(flood(), timeout=120)
        growth = peak_rss_bytes() - before
        assert not probe.is_error or "database busy" in text_of(probe), text_of(probe)
        assert bystander == (1,)
        assert len(results) == 50
        for result in results:
            text = text_of(result)
            assert not result.is_error or "timed out" in text or "database busy" in text, text
        assert growth < 256 * 1024**2, f"peak memory grew by {growth / 1024**2:.0f} MiB"
        no_runaway(checker)
        assert not harness.call("query", sql="SELECT 1").is_error
    finally:
        harness.close()
