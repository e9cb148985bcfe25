"""Locust users for the MCP endpoint: a realistic mix of discovery and query tool calls over the 2026-07-28
protocol (raw JSON-RPC over HTTP: the asyncio SDK client does not belong inside gevent).

Environment:
  MCP_API_KEYS   comma-separated bearer keys; users take them round-robin (one key each, as real clients do)
  LOAD_MAX_FAILURE_RATIO, LOAD_MAX_P95_MS, LOAD_MIN_RPS
                 thresholds checked when the run ends; any miss makes locust exit 1
Run through `python -m loadtests.load` (make load), which starts the server and sets these.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment

logger = logging.getLogger("loadtests.locustfile")

_KEYS = itertools.cycle([key for key in os.environ.get("MCP_API_KEYS", "").split(",") if key])
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


class McpUser(FastHttpUser):
    """One MCP client: explores the schema now and then, mostly runs queries."""

    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.key = next(_KEYS)

    def call(self, tool: str, arguments: dict[str, Any], name: str) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": META},
        }
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "tools/call",
            "Mcp-Name": tool,
        }
        with self.client.post(
            "/mcp", data=json.dumps(body), headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            result = json.loads(response.text).get("result") or {}
            if result.get("isError", True):
                response.failure(f"tool error: {json.dumps(result)[:300]}")

    @task(6)
    def small_query(self) -> None:
        self.call(
            "query",
            {
                "sql": "SELECT status, count(*), sum(total) FROM shop.orders WHERE customer_id = $1 GROUP BY status",
                "params": [17],
            },
            "query: aggregate",
        )

    @task(2)
    def hundred_rows(self) -> None:
        self.call("query", {"sql": "SELECT * FROM shop.orders ORDER BY order_id LIMIT 100"}, "query: 100 rows")

    @task(1)
    def describe(self) -> None:
        self.call("describe_table", {"schema": "shop", "table": "orders"}, "describe_table")

    @task(1)
    def list_tables(self) -> None:
        self.call("list_tables", {"schema": "shop"}, "list_tables")


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # locust leaves it unannotated
def check_thresholds(environment: Environment, **_: Any) -> None:
    """Fail the run (exit 1) when a threshold is missed; say which."""
    total = environment.stats.total
    limits = {
        "failure ratio": (total.fail_ratio, float(os.environ.get("LOAD_MAX_FAILURE_RATIO", "0.01")), "max"),
        "p95 ms": (
            total.get_response_time_percentile(0.95) or 0.0,
            float(os.environ.get("LOAD_MAX_P95_MS", "250")),
            "max",
        ),
        "requests/s": (total.total_rps, float(os.environ.get("LOAD_MIN_RPS", "100")), "min"),
    }
    missed = [
        f"{name}: {value:.3f} (threshold {kind} {limit})"
        for name, (value, limit, kind) in limits.items()
        if (value > limit if kind == "max" else value < limit)
    ]
    if total.num_requests == 0:
        missed.append("no request was made")
    if missed:
        logger.error("load thresholds missed: %s", "; ".join(missed))
        environment.process_exit_code = 1
    else:
        logger.info(
            "load thresholds met: %s", ", ".join(f"{name} {value:.3f}" for name, (value, _, _) in limits.items())
        )
