"""`make bench-scale`: what more server processes buy. `SELECT 1` tool calls per second at 10 and 50 clients, and
the single-client median and p95, for `MCP_WORKERS=1` and `MCP_WORKERS=2`, each next to the same statement on a
raw psycopg pool measured in the same run (the floor), on a private native PostgreSQL 18.

Targets (this 2-core machine): at least 1,000 calls/s at 10 clients with the better worker count, and a
single-client median no slower than the best peer's (DBHub 1.4.0: 1.82 ms, measured with one official-SDK client
against each server in one run). The run exits 1 when one is missed (`--report-only` to just report); the report
goes to reports/bench-scale.json.

Then the scaled-out stack (`PROFILE=scale`, a project of its own on free ports, removed afterwards): 3 and 1
replicas behind HAProxy reading from the hot standby, and 3 replicas reading from the primary (the standby
stopped), each beside raw psycopg to the primary's published port in the same run (`--no-stack` skips these).
A benchmark, never part of `make test`: the machine's other load moves these numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from psycopg_pool import AsyncConnectionPool

from devtools.paths import REPO
from loadtests.bench_mcp import MODERN, raw_client, raw_latency, summary, throughput, tool_client, tool_latency
from loadtests.harness import Target, local_target

REPORT = REPO / "reports" / "bench-scale.json"
WORKER_COUNTS = (1, 2)
CLIENTS = (10, 50)
TARGETS = {"calls_per_s_at_10": 1000.0, "single_client_median_ms": 1.82}
STACK_REPLICAS = 3


@dataclass(frozen=True)
class _Port:
    port: int


class StackTarget:
    """The scaled-out stack in the shape `measure` reads: `.server.port` (HAProxy's), `.keys`, `.pg.dsn(role)`."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.server = _Port(stack.mcp_port)
        self.keys = [stack.api_key]
        self.pg = self

    def dsn(self, role: str) -> str:
        """The floor's connection: as app_owner, whatever `role` says. The replicas' pools already hold 15 of
        mcp_reader's 20 connections on the primary when they read there; SELECT 1 costs the same for any role."""
        return str(self.stack.dsn("app_owner"))


def measure_stack(calls: int, seconds: float) -> dict[str, Any]:
    """The scale profile's rows: replicas behind HAProxy, reads on the standby, then on the primary."""
    from tests.fixtures.stack import start_stack
    from tests.helpers import wait_until

    rows: dict[str, Any] = {}
    # one key for every client: the per-key limit (a policy, per replica) must not be what is measured
    env = {"MCP_REPLICAS": str(STACK_REPLICAS), "MCP_MAX_CONCURRENCY_PER_KEY": "1000"}
    print(f"PROFILE=scale: {STACK_REPLICAS} replicas behind HAProxy and a hot standby ...", file=sys.stderr)
    with start_stack(profile="scale", env=env) as stack:
        target = StackTarget(stack)

        def replicas(count: int) -> bool:
            """`count` mcp containers, every one healthy (HAProxy's checks follow within a second or two)."""
            ids = stack.compose("ps", "-q", "mcp").stdout.split()
            health = [stack.container_health(container) for container in ids]
            return len(ids) == count and health == ["healthy"] * count

        rows[f"{STACK_REPLICAS} replicas, standby"] = uvloop.run(measure(target, calls, seconds))
        print(
            f"  {STACK_REPLICAS} replicas, standby: {brief(rows[f'{STACK_REPLICAS} replicas, standby'])}",
            file=sys.stderr,
        )
        stack.compose("up", "-d", "--no-recreate", "--scale", "mcp=1", "mcp")
        wait_until(lambda: replicas(1), timeout=60, what="one mcp replica")
        rows["1 replica, standby"] = uvloop.run(measure(target, calls, seconds))
        print(f"  1 replica, standby: {brief(rows['1 replica, standby'])}", file=sys.stderr)
        stack.compose("up", "-d", "--no-recreate", "--scale", f"mcp={STACK_REPLICAS}", "mcp")
        wait_until(lambda: replicas(STACK_REPLICAS), timeout=120, what=f"{STACK_REPLICAS} healthy mcp replicas")
        stack.compose("stop", "postgres-standby")
        rows[f"{STACK_REPLICAS} replicas, primary"] = uvloop.run(measure(target, calls, seconds))
        print(
            f"  {STACK_REPLICAS} replicas, primary: {brief(rows[f'{STACK_REPLICAS} replicas, primary'])}",
            file=sys.stderr,
        )
    return rows


async def measure(target: Target, calls: int, seconds: float) -> dict[str, Any]:
    """One server's numbers, each beside the raw psycopg floor measured right after it."""
    result: dict[str, Any] = {"throughput": {}}
    async with AsyncConnectionPool(target.pg.dsn("mcp_reader"), min_size=10, max_size=10, open=False) as pool:
        await pool.wait()
        result["latency"] = {
            "mcp": summary(await tool_latency(target, "query", {"sql": "SELECT 1"}, calls, MODERN)),
            "psycopg": summary(await raw_latency(pool, "SELECT 1", [], calls)),
        }
        for clients in CLIENTS:
            result["throughput"][str(clients)] = {
                "mcp_calls_per_s": await throughput(tool_client(target, "SELECT 1"), clients, seconds),
                "psycopg_calls_per_s": await throughput(raw_client(pool, "SELECT 1"), clients, seconds),
            }
    return result


def brief(run: dict[str, Any]) -> str:
    """One row as a progress line: the median, then calls/s at each client count, each beside its floor."""
    latency = run["latency"]
    rates = ", ".join(
        f"{clients} clients {run['throughput'][str(clients)]['mcp_calls_per_s']:.0f}/s "
        f"(floor {run['throughput'][str(clients)]['psycopg_calls_per_s']:.0f}/s)"
        for clients in CLIENTS
    )
    return f"median {latency['mcp']['median_ms']:.3f} ms (floor {latency['psycopg']['median_ms']:.3f} ms), {rates}"


def verdict(report: dict[str, Any]) -> list[str]:
    runs = [*report["workers"].values(), *report.get("stack", {}).values()]
    best_rate = max(run["throughput"]["10"]["mcp_calls_per_s"] for run in runs)
    best_median = min(run["latency"]["mcp"]["median_ms"] for run in runs)
    checks = [
        ("calls/s at 10 clients (best row)", best_rate, TARGETS["calls_per_s_at_10"], ">="),
        ("single-client median, ms (best row)", best_median, TARGETS["single_client_median_ms"], "<="),
    ]
    missed = []
    report["targets"] = {}
    for label, value, limit, relation in checks:
        good = value >= limit if relation == ">=" else value <= limit
        report["targets"][label] = {"value": value, "target": f"{relation} {limit}", "met": good}
        if not good:
            missed.append(f"{label}: {value}, target {relation} {limit}")
    return missed


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'server':<24} {'median':>8} {'p95':>8} {'floor median':>13} "
        + " ".join(f"{f'{clients} clients/s':>14} {'floor/s':>8}" for clients in CLIENTS)
    ]
    rows = {f"MCP_WORKERS={workers}": run for workers, run in report["workers"].items()}
    rows.update({f"stack: {name}": run for name, run in report.get("stack", {}).items()})
    for workers, run in rows.items():
        ours, floor = run["latency"]["mcp"], run["latency"]["psycopg"]
        rates = " ".join(
            f"{run['throughput'][str(clients)]['mcp_calls_per_s']:>14.0f} "
            f"{run['throughput'][str(clients)]['psycopg_calls_per_s']:>8.0f}"
            for clients in CLIENTS
        )
        lines.append(
            f"{workers:<24} {ours['median_ms']:>6.3f}ms {ours['p95_ms']:>6.3f}ms {floor['median_ms']:>11.3f}ms {rates}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls for the single-client latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--report-only", action="store_true", help="exit 0 even when a target is missed")
    parser.add_argument("--no-stack", action="store_true", help="only the worker rows (no Docker)")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"workers": {}, "calls": args.calls, "seconds": args.seconds}
    for workers in WORKER_COUNTS:
        print(f"MCP_WORKERS={workers}: a private PostgreSQL 18 and python -m pgmcp ...", file=sys.stderr)
        with local_target(clients=max(CLIENTS), overrides={"MCP_WORKERS": str(workers)}) as target:
            report["workers"][str(workers)] = uvloop.run(measure(target, args.calls, args.seconds))
        print(f"  MCP_WORKERS={workers}: {brief(report['workers'][str(workers)])}", file=sys.stderr)
    if not args.no_stack:
        report["stack"] = measure_stack(args.calls, args.seconds)
    missed = verdict(report)
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
