"""`make bench`: the MCP server's latency and throughput, side by side with the same statement on a raw pooled
psycopg connection, in the same run, on a private native PostgreSQL 18.

- latency: median and p95 of N sequential calls (default 1000) of `query` with `SELECT 1`, `query` with a 100-row
  select, and `describe_table`, over HTTP on loopback (2026-07-28 protocol; `SELECT 1` also on 2025-11-25), next
  to the same statement through psycopg_pool;
- throughput: `SELECT 1` tool calls per second with 1, 10 and 50 concurrent clients, next to raw psycopg;
- memory: the server's peak RSS after 10 concurrent clients (the pool's size) ran capped queries over a 1M-row
  table.

Targets (this 2-core machine): SELECT 1 median <= 2 ms and p95 <= 4 ms, >= 1000 calls/s at 10 clients, peak RSS
< 150 MB. The run exits 1 when one is missed (`--report-only` to just report). The report goes to
reports/bench-mcp.json. This is a benchmark, not a test: it is never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import uvloop
from psycopg_pool import AsyncConnectionPool

from devtools.paths import REPO
from loadtests.harness import (
    LEGACY,
    MODERN,
    HttpConnection,
    Target,
    check_result,
    local_target,
    peak_rss_mb,
    rpc_request,
)
from pgmcp.schema import DESCRIBE_SQL

REPORT = REPO / "reports" / "bench-mcp.json"
TARGETS = {"select1_median_ms": 2.0, "select1_p95_ms": 4.0, "calls_per_s_at_10": 1000.0, "peak_rss_mb": 150.0}
MEMORY_CLIENTS = 10
MEMORY_ROUNDS = 5
HUNDRED_ROWS = "SELECT * FROM shop.orders ORDER BY order_id LIMIT 100"
CAPPED_BIG = [
    "SELECT * FROM shop.big",  # capped by rows
    "SELECT id, repeat(wide, 40) AS wide FROM shop.big",  # 2.6 kB rows: capped by bytes
    "SELECT id, repeat(wide, 400) AS huge FROM shop.big",  # 26 kB values: cut per cell, then capped by bytes
    "SELECT * FROM shop.big WHERE payload LIKE '%ab%'",
    "SELECT b.*, o.status FROM shop.big b JOIN shop.orders o ON o.order_id = b.id",
]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 0.95), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "n": len(samples),
    }


async def timed_calls(call: Callable[[], Awaitable[Any]], count: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def tool_latency(target: Target, tool: str, arguments: dict[str, Any], count: int, version: str) -> list[float]:
    port = target.server.port
    request = rpc_request(port, target.keys[0], tool, arguments, version=version)
    connection = await HttpConnection.open(port)
    try:
        return await timed_calls(lambda: _checked(connection, request), count)
    finally:
        await connection.close()


async def _checked(connection: HttpConnection, request: bytes) -> None:
    check_result(*(await connection.call(request)))


async def raw_latency(pool: AsyncConnectionPool[Any], sql: str, params: list[Any], count: int) -> list[float]:
    async def once() -> None:
        async with pool.connection() as conn:
            cursor = psycopg.AsyncRawCursor(conn)
            await cursor.execute(sql, params or None)
            await cursor.fetchall()

    return await timed_calls(once, count)


async def throughput(run_client: Callable[[int, float], Awaitable[int]], clients: int, seconds: float) -> float:
    deadline = time.perf_counter() + seconds
    counts = await asyncio.gather(*(run_client(index, deadline) for index in range(clients)))
    return round(sum(counts) / seconds, 1)


def tool_client(target: Target, sql: str) -> Callable[[int, float], Awaitable[int]]:
    async def run(index: int, deadline: float) -> int:
        port = target.server.port
        request = rpc_request(port, target.keys[index % len(target.keys)], "query", {"sql": sql})
        connection = await HttpConnection.open(port)
        calls = 0
        try:
            while time.perf_counter() < deadline:
                check_result(*(await connection.call(request)))
                calls += 1
        finally:
            await connection.close()
        return calls

    return run


def raw_client(pool: AsyncConnectionPool[Any], sql: str) -> Callable[[int, float], Awaitable[int]]:
    async def run(index: int, deadline: float) -> int:
        calls = 0
        while time.perf_counter() < deadline:
            async with pool.connection() as conn:
                await (await conn.execute(sql)).fetchall()
            calls += 1
        return calls

    return run


async def bench(target: Target, count: int, seconds: float) -> dict[str, Any]:
    report: dict[str, Any] = {"latency": {}, "throughput": {}}
    reader = target.pg.dsn("mcp_reader")
    async with AsyncConnectionPool(reader, min_size=10, max_size=10, open=False) as pool:
        await pool.wait()
        cases: list[tuple[str, str, dict[str, Any], str, str, list[Any]]] = [
            ("query SELECT 1", "query", {"sql": "SELECT 1"}, MODERN, "SELECT 1", []),
            ("query SELECT 1 (2025-11-25)", "query", {"sql": "SELECT 1"}, LEGACY, "SELECT 1", []),
            ("query 100 rows", "query", {"sql": HUNDRED_ROWS}, MODERN, HUNDRED_ROWS, []),
            (
                "describe_table",
                "describe_table",
                {"schema": "shop", "table": "orders"},
                MODERN,
                DESCRIBE_SQL,
                [None, "shop", "orders"],
            ),
        ]
        for name, tool, arguments, version, sql, params in cases:
            ours = summary(await tool_latency(target, tool, arguments, count, version))
            raw = summary(await raw_latency(pool, sql, params, count))
            report["latency"][name] = {"mcp": ours, "psycopg": raw}
        for clients in (1, 10, 50):
            rate = await throughput(tool_client(target, "SELECT 1"), clients, seconds)
            raw_rate = await throughput(raw_client(pool, "SELECT 1"), clients, seconds)
            report["throughput"][str(clients)] = {"mcp_calls_per_s": rate, "psycopg_calls_per_s": raw_rate}
    capped = 0
    for sql in CAPPED_BIG:  # as many clients as pooled connections: memory, not queueing, is measured here
        capped += sum(await asyncio.gather(*(_capped(target, index, sql) for index in range(MEMORY_CLIENTS))))
    report["memory"] = {
        "capped_calls_over_1m_rows": capped,
        "peak_rss_mb": round(peak_rss_mb(target.server.process.pid), 1),
    }
    return report


async def _capped(target: Target, index: int, sql: str) -> int:
    port = target.server.port
    connection = await HttpConnection.open(port)
    try:
        for _ in range(MEMORY_ROUNDS):
            result = check_result(
                *(await connection.call(rpc_request(port, target.keys[index], "query", {"sql": sql})))
            )
            if not result["structuredContent"]["truncated"]:
                raise RuntimeError(f"expected a capped result for {sql}")
        return MEMORY_ROUNDS
    finally:
        await connection.close()


def verdict(report: dict[str, Any]) -> list[str]:
    select1 = report["latency"]["query SELECT 1"]["mcp"]
    checks = [
        ("SELECT 1 tool call median", select1["median_ms"], TARGETS["select1_median_ms"], "ms", "<="),
        ("SELECT 1 tool call p95", select1["p95_ms"], TARGETS["select1_p95_ms"], "ms", "<="),
        (
            "calls/s at 10 clients",
            report["throughput"]["10"]["mcp_calls_per_s"],
            TARGETS["calls_per_s_at_10"],
            "/s",
            ">=",
        ),
        ("peak server RSS", report["memory"]["peak_rss_mb"], TARGETS["peak_rss_mb"], "MB", "<"),
    ]
    missed = []
    for label, value, limit, unit, relation in checks:
        good = {"<=": value <= limit, ">=": value >= limit, "<": value < limit}[relation]
        report.setdefault("targets", {})[label] = {"value": value, "target": f"{relation} {limit} {unit}", "met": good}
        if not good:
            missed.append(f"{label}: {value} {unit}, target {relation} {limit} {unit}")
    return missed


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'latency (sequential)':<30} {'mcp median':>11} {'mcp p95':>9} {'psycopg median':>15} {'psycopg p95':>12}",
    ]
    for name, both in report["latency"].items():
        ours, raw = both["mcp"], both["psycopg"]
        lines.append(
            f"{name:<30} {ours['median_ms']:>9.3f}ms {ours['p95_ms']:>7.3f}ms {raw['median_ms']:>13.3f}ms "
            f"{raw['p95_ms']:>10.3f}ms"
        )
    lines.append(f"{'throughput, SELECT 1':<30} {'mcp calls/s':>11} {'psycopg calls/s':>25}")
    for clients, both in report["throughput"].items():
        lines.append(
            f"{clients + ' clients':<30} {both['mcp_calls_per_s']:>11.0f} {both['psycopg_calls_per_s']:>25.0f}"
        )
    memory = report["memory"]
    lines.append(
        f"peak server RSS after {memory['capped_calls_over_1m_rows']} capped calls over 1M rows: "
        f"{memory['peak_rss_mb']} MB"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per latency case")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--report-only", action="store_true", help="exit 0 even when a target is missed")
    args = parser.parse_args(argv)
    print("starting a native PostgreSQL 18 (10k orders + a 1M-row table) and python -m pgmcp ...", file=sys.stderr)
    with local_target(big_table=True, clients=50) as target:
        report = uvloop.run(bench(target, args.calls, args.seconds))
    missed = verdict(report)
    report["calls"] = args.calls
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"report: {args.report}")
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed), file=sys.stderr)
        return 0 if args.report_only else 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
