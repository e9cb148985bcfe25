"""Resource abuse (corpus section E): row floods, materialising and endless queries, huge values, a lock queue
and a flood of parallel heavy calls. The server must answer with capped results or clear timeouts, keep its
memory bounded, stay responsive, and leave no runaway backend or temporary file behind.

Runs with every layer on and with the layer that should stop each class alone (CAP for row floods, TMO for
work that never yields a row). The harness's statement timeout is 1.5 s.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp.types import CallToolResult
from psycopg import sql

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from devtools.paths import REPO
from tests.helpers import tool_call, wait_until
from tests.security.corpus import ALL_LAYER_NAMES
from tests.security.harness import STATEMENT_TIMEOUT_MS, Servers, text_of

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


def peak_rss_reset(pid: int) -> None:
    """Reset the peak resident set size of process `pid` (Linux: write 5 to /proc/PID/clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of process `pid` since it started or since `peak_rss_reset` (VmHWM)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


# The harness's limits (harness_settings), as the environment of a server process.
PROCESS_SETTINGS = {
    "MCP_STATEMENT_TIMEOUT": f"{STATEMENT_TIMEOUT_MS}ms",
    "MCP_LOCK_TIMEOUT": "500ms",
    "MCP_POOL_MIN_SIZE": "1",
    "MCP_POOL_MAX_SIZE": "1",
    "MCP_POOL_TIMEOUT": "1s",
    "MCP_ALLOW_EXPLAIN_ANALYZE": "true",
    "MCP_MAX_CONCURRENCY_PER_KEY": "64",
}


@dataclass
class ServerProcess:
    """A server with some layers off in a process of its own (tests.security.layer_server), so that memory is
    measured on the server alone; `call` goes over HTTP like any client's."""

    server: McpServerProcess

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def call(self, tool: str, timeout: float = 60, **arguments: Any) -> CallToolResult:
        key = next(iter(self.server.keys.values()))
        answer = tool_call("127.0.0.1", self.server.port, key, tool, arguments, timeout=timeout)
        return CallToolResult.model_validate(answer)


def start_layer_server(pg: NativePostgres, active: tuple[str, ...], **overrides: str) -> ServerProcess:
    pythonpath = os.pathsep.join(
        filter(None, [str(REPO), str(REPO / "services/mcp/src"), os.environ.get("PYTHONPATH")])
    )
    server = start_mcp_process(
        pg,
        overrides={**PROCESS_SETTINGS, "PYTHONPATH": pythonpath, **overrides},
        module="tests.security.layer_server",
        args=("--layers", ",".join(active)),
    )
    return ServerProcess(server)


@pytest.fixture(scope="module")
def processes(pg: NativePostgres) -> Iterator[Callable[[tuple[str, ...]], ServerProcess]]:
    """`processes(active)`: one server process per layer configuration, kept for the module."""
    started: dict[tuple[str, ...], ServerProcess] = {}

    def get(active: tuple[str, ...]) -> ServerProcess:
        if active not in started:
            started[active] = start_layer_server(pg, active)
        return started[active]

    try:
        yield get
    finally:
        for process in started.values():
            process.server.cleanup()


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
def test_cap_alone_streams_and_stops(processes: Any, checker: psycopg.Connection, name: str) -> None:
    """CAP is "capped while streaming": the rows past the limit are never held, so the server's memory does not
    grow with the size of the result, whatever the other layers do. Measured on the server process."""
    server = processes(("cap",))
    peak_rss_reset(server.pid)
    before = peak_rss_bytes(server.pid)
    result = server.call("query", sql=BOUNDED_FLOODS[name])
    growth = peak_rss_bytes(server.pid) - before
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
    processes: Any, checker: psycopg.Connection, name: str, active: tuple[str, ...]
) -> None:
    """One value is received whole (libpq has no partial rows), so CAP can cut it but not avoid holding it; the
    statement timeout ends the call. The bound is PostgreSQL's own: no value exceeds 1 GB, and one call holds at
    most about two copies of what it received (measured: 900 MB cost 1.7 GiB at the peak). docs/security.md
    explains how to size the container for it. Measured on the server process."""
    server = processes(active)
    peak_rss_reset(server.pid)
    before = peak_rss_bytes(server.pid)
    result = server.call("query", sql=HUGE_VALUES[name])
    growth = peak_rss_bytes(server.pid) - before
    assert growth < 2 * 1024**3, f"peak memory grew by {growth / 1024**2:.0f} MiB"
    if result.is_error:
        assert "57014" in text_of(result), text_of(result)
    else:
        structured = result.structured_content
        assert structured is not None and structured["truncated"] and structured["bytes"] <= 256 * 1024
    no_runaway(checker)
    assert not server.call("query", sql="SELECT 1").is_error


def test_the_memory_measure_sees_the_server(processes: Any, checker: psycopg.Connection) -> None:
    """Control for the bounds above: a 100 MB value, which libpq receives whole, shows in the server process's
    peak (so a bound that holds is the server's, not a measure of some other process)."""
    server = processes(("cap",))
    peak_rss_reset(server.pid)
    before = peak_rss_bytes(server.pid)
    result = server.call("query", sql="SELECT repeat('x', 100000000) AS big")
    growth = peak_rss_bytes(server.pid) - before
    assert not result.is_error, text_of(result)
    assert growth >= 100 * 1024**2, f"the server's peak grew by only {growth / 1024**2:.0f} MiB for a 100 MB value"
    no_runaway(checker)


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
    pg: NativePostgres, checker: psycopg.Connection, flood_reader: tuple[str, str], tmp_path: Path
) -> None:
    """Corpus 40: fifty heavy calls at once, over HTTP, on a pool of four. The server may use its pool plus the
    one direct connection pgmcp.db opens to diagnose a pool timeout, no more. Every call must end with a result,
    a timeout, or "database busy" with a retry hint; none may hang; the server's memory (its own process)
    stays bounded; it answers normally afterwards."""
    user, password = flood_reader
    password_file = tmp_path / "flood_password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    server = start_layer_server(
        pg,
        ALL_LAYER_NAMES,
        MCP_DATABASE_USER=user,
        MCP_DATABASE_PASSWORD_FILE=str(password_file),
        MCP_POOL_MAX_SIZE="4",
    )
    heavy = "SELECT count(*) FROM shop.orders a, shop.orders b"
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

        peak_rss_reset(server.pid)
        before = peak_rss_bytes(server.pid)
        with ThreadPoolExecutor(max_workers=52) as pool:
            calls = [pool.submit(server.call, "query", sql=heavy) for _ in range(50)]
            # the flood is under way: confirmed, not assumed, before probing (every pooled connection is running
            # a heavy query and the rest of the calls are queued)
            wait_until(lambda: running(user) == 4, timeout=30, interval=0.05, what="the pool of 4 to be saturated")
            # while it lasts, the server still answers (a result or "database busy" with a retry hint, not a
            # hang), and the database still serves other applications
            probe = pool.submit(server.call, "list_schemas")
            bystander = pool.submit(other_application)
            results = [call.result(timeout=120) for call in calls]
            probe_result, bystander_row = probe.result(timeout=60), bystander.result(timeout=60)
        growth = peak_rss_bytes(server.pid) - before
        assert not probe_result.is_error or "database busy" in text_of(probe_result), text_of(probe_result)
        assert bystander_row == (1,)
        assert len(results) == 50
        for result in results:
            text = text_of(result)
            assert not result.is_error or "timed out" in text or "database busy" in text, text
        assert growth < 256 * 1024**2, f"the server's peak memory grew by {growth / 1024**2:.0f} MiB"
        no_runaway(checker)
        assert not server.call("query", sql="SELECT 1").is_error
    finally:
        server.server.cleanup()
