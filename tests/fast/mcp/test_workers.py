"""Several workers per server (`MCP_WORKERS`, `pgmcp.workers`): `python -m pgmcp` as a supervisor of worker
processes on one port. What stays true across them: every worker serves, `/metrics` adds up all of them
whichever one answers the scrape, `/readyz` answers for the whole server, the per-key limit counts the calls of
every worker, the pool stays within MCP_POOL_MAX_SIZE in total, a killed worker is replaced, and SIGTERM stops
them all."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from devtools.net import free_port
from pgmcp.config import Settings
from pgmcp.workers import Shared, container_cpus, pool_share, worker_count
from tests.fast.mcp.helpers import ALICE
from tests.fast.mcp.raw_http import metric, post, rpc
from tests.fixtures.pg import native_pg_fixture
from tests.helpers import wait_until

own_pg = native_pg_fixture(scope="module", demo_orders=10, doc="A server only these workers connect to.")
SLOW_SQL = "SELECT count(*) FROM generate_series(1, 30000000)"  # a second or two of CPU on the server


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def call(server: McpServerProcess, sql: str = "SELECT 1") -> tuple[int, dict[str, object]]:
    status, _, body = post(server, rpc("tools/call", {"name": "query", "arguments": {"sql": sql}}))
    return status, json.loads(body) if body else {}


def readiness(server: McpServerProcess) -> tuple[int, dict[str, object]]:
    status, _, body = post(server, b"", key=None, path="/readyz", method="GET")
    return status, json.loads(body)


@pytest.fixture
def workers(own_pg: NativePostgres) -> Iterator[McpServerProcess]:
    server = start_mcp_process(
        own_pg,
        keys={ALICE: "a" * 32},
        overrides={
            "MCP_WORKERS": "2",
            "MCP_POOL_MIN_SIZE": "4",
            "MCP_POOL_MAX_SIZE": "4",
            "MCP_MAX_CONCURRENCY_PER_KEY": "2",
            "MCP_STATEMENT_TIMEOUT": "20s",
        },
    )
    try:
        yield server
    finally:
        server.cleanup()


def test_auto_is_one_worker_per_cpu_within_the_pool() -> None:
    assert worker_count(Settings(database_password="x", workers=3, pool_max_size=10)) == 3
    assert worker_count(Settings(database_password="x", pool_max_size=10)) == min(container_cpus(), 10)
    assert worker_count(Settings(database_password="x", pool_max_size=1, pool_min_size=0)) == 1
    for total in range(0, 12):
        for count in range(1, 5):
            shares = [pool_share(total, count, index) for index in range(count)]
            assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_more_workers_than_pooled_connections_is_a_configuration_error() -> None:
    with pytest.raises(Exception, match=r"MCP_WORKERS=4 is more than MCP_POOL_MAX_SIZE=2"):
        Settings(database_password="x", workers=4, pool_max_size=2, pool_min_size=1)


def test_the_shared_limit_counts_every_worker_and_forgets_a_dead_one() -> None:
    shared = Shared(2)
    assert shared.take(0, "alice", 2) == 1
    assert shared.take(1, "alice", 2) == 2
    assert shared.take(1, "alice", 2) is None  # the server's limit, whichever worker asks
    assert shared.take(0, "bob", 2) == 1  # per caller
    shared.forget(1)
    assert shared.take(0, "alice", 2) == 2
    assert shared.give(0, "alice") == 1


def test_callers_unknown_at_start_get_a_row_while_in_flight_and_free_it_after() -> None:
    shared = Shared(2, capacity=3)
    assert [shared.take(0, name, 5) for name in ("a", "b", "c")] == [1, 1, 1]
    assert shared.take(1, "d", 5) is None  # three callers in flight fill the table
    assert shared.take(1, "b", 5) == 2  # a caller already in flight still gets its slot
    assert (shared.give(0, "b"), shared.give(1, "b")) == (1, 0)  # b's last call ended: its row is free
    assert shared.take(1, "d", 5) == 1
    assert shared.give(1, "d") == 0 and shared.give(1, "d") == 0  # a give after the row was freed is harmless
    shared.forget(0)  # a, c only had calls on worker 0: their rows are free
    assert [shared.take(1, name, 5) for name in ("x", "y", "z")] == [1, 1, 1]


def test_the_table_is_one_table_for_every_worker_process() -> None:
    shared = Shared(2, capacity=4)
    process = multiprocessing.get_context("fork").Process(target=shared.take, args=(1, "carol", 3))
    process.start()
    process.join(10)
    assert process.exitcode == 0
    assert shared.take(0, "carol", 3) == 2  # the child's call is counted here


def test_every_worker_serves_and_the_server_is_ready_as_a_whole(workers: McpServerProcess) -> None:
    status, body = readiness(workers)
    assert status == 200 and body["workers"] == {"serving": 2, "total": 2}
    assert len(children(workers.process.pid)) == 2
    results: list[int] = []

    def some_calls() -> None:
        for _ in range(10):
            results.append(call(workers)[0])

    threads = [threading.Thread(target=some_calls) for _ in range(2)]  # within the per-key limit of 2
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 20
    audit = [json.loads(line) for line in workers.log_text().splitlines() if '"pgmcp.audit"' in line]
    assert {line["worker"] for line in audit} == {0, 1}, "each worker answered some calls"


def test_a_burst_of_connections_is_spread_over_the_workers(workers: McpServerProcess) -> None:
    """Twenty connections opened at once, before any request: each worker listens on a socket of its own in one
    SO_REUSEPORT group, so the kernel spreads them (all on one worker: a chance of 2 in 2**20). With one shared
    socket, the first worker to wake accepted the whole burst."""
    sockets = [socket.create_connection(("127.0.0.1", workers.port), timeout=30) for _ in range(20)]
    answered_by: list[int] = []
    try:
        for sock in sockets:
            sock.sendall(f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{workers.port}\r\n\r\n".encode())
            response = b""
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, "the connection closed before its answer"
                response += chunk
            answered_by.append(json.loads(response.split(b"\r\n\r\n", 1)[1])["worker"])
    finally:
        for sock in sockets:
            sock.close()
    assert set(answered_by) == {0, 1}, answered_by


def test_metrics_add_up_every_worker_whichever_answers(workers: McpServerProcess) -> None:
    before = metric(workers, "pgmcp_tool_calls_total", '{outcome="ok",tool="query"}')
    for _ in range(12):
        assert call(workers)[0] == 200
    # each scrape may reach either worker: every one must show all twelve calls
    seen = {metric(workers, "pgmcp_tool_calls_total", '{outcome="ok",tool="query"}') for _ in range(8)}
    assert seen == {before + 12}
    assert metric(workers, "pgmcp_pool_connections", '{state="open"}') == 4  # 2 + 2: both pools


def test_the_per_key_limit_holds_for_the_server_not_per_worker(workers: McpServerProcess) -> None:
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(call(workers, SLOW_SQL)[0])) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # two workers with a limit each would let up to four through
    assert sorted(statuses).count(200) <= 2 and statuses.count(429) >= 4, statuses


def test_the_pool_stays_within_its_total(workers: McpServerProcess, own_pg: NativePostgres) -> None:
    """MCP_POOL_MIN_SIZE=MCP_POOL_MAX_SIZE=4 over two workers: the pools fill to 2 + 2 (in the background, after
    /readyz) and never pass 4, busy or not."""

    def pooled() -> int:
        with psycopg.connect(own_pg.dsn()) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmcp'").fetchone()
        assert row is not None
        return int(row[0])

    wait_until(lambda: pooled() == 4, timeout=30, what="both workers' pools to open their 2 connections each")
    for _ in range(10):
        assert call(workers)[0] == 200
    assert pooled() == 4


def test_a_killed_worker_is_replaced_and_the_server_keeps_serving(workers: McpServerProcess) -> None:
    for _ in range(4):
        assert call(workers)[0] == 200
    counted = metric(workers, "pgmcp_tool_calls_total", '{outcome="ok",tool="query"}')
    first = children(workers.process.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(children(workers.process.pid) - first) == 1 and readiness(workers)[0] == 200,
        timeout=60,
        what="the supervisor to start a new worker and be ready again",
    )
    assert call(workers)[0] == 200
    assert "exited with status -9: starting it again" in workers.log_text()
    # the dead worker's calls still count: counters outlive their process
    assert metric(workers, "pgmcp_tool_calls_total", '{outcome="ok",tool="query"}') >= counted + 1


def test_sigterm_stops_every_worker_and_exits_0(workers: McpServerProcess) -> None:
    pids = children(workers.process.pid)
    assert workers.stop() == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_startup_failure_exits_once_with_its_status(pg: NativePostgres) -> None:
    env = {
        **os.environ,
        "MCP_DATABASE_HOST": pg.host,
        "MCP_DATABASE_PORT": str(pg.port),
        "MCP_DATABASE_PASSWORD": "not-the-password",
        "MCP_API_KEYS": "alice:" + "a" * 32,
        "MCP_PORT": str(free_port()),
        "MCP_WORKERS": "2",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pgmcp"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 5, result.stderr
    assert "the server refused the password of role mcp_reader" in result.stderr
    assert "started worker" not in result.stdout
