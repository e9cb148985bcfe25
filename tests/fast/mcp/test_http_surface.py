"""The whole MCP surface over HTTP, against `python -m pgmcp` (the `http_server` fixture): every tool, both
resources and every prompt succeed on both protocol generations (2026-07-28 stateless and the 2025-era
initialize handshake), each tool's structured content validating against its advertised outputSchema; the list
results carry the cache hint app.py configures, on the wire exactly as the SDK writes it (top-level `ttlMs` and
`cacheScope`, 2026-07-28 only); a database error and a guard rejection move their Prometheus counters by one;
and on a server whose operator allows EXPLAIN ANALYZE, an analysed statement that outlives the statement timeout
fails with SQLSTATE 57014 and leaves no backend running it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from mcp.types import TextContent, TextResourceContents

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from pgmcp.app import LIST_TTL_MS, READ_TTL_MS
from pgmcp.resources import OVERVIEW_URI, TABLE_TEMPLATE
from tests.fast.mcp.helpers import ALICE, BOB, call_checked, http_client, rows_of
from tests.fast.mcp.raw_http import LEGACY, MODERN, metric, post, rpc

MODES = {"auto": MODERN, "legacy": LEGACY}
ORDERS_URI = "pg://tables/shop/orders"

Check = Callable[[dict[str, Any]], bool]

# one representative call per tool, in the order tools/list gives them, with what its structured content must show
TOOL_CALLS: dict[str, tuple[dict[str, Any], Check]] = {
    "list_schemas": ({}, lambda s: "shop" in {item["name"] for item in s["schemas"]}),
    "list_tables": ({"schema": "shop"}, lambda s: "orders" in {item["name"] for item in s["tables"]}),
    "describe_table": (
        {"schema": "shop", "table": "orders"},
        lambda s: s["name"] == "orders" and s["primary_key"] == ["order_id"],
    ),
    "search_schema": (
        {"pattern": "email", "kind": "column"},
        lambda s: ("customers", "email") in {(m["table"], m["column"]) for m in s["matches"]},
    ),
    "query": (
        {"sql": "SELECT status, count(*) FROM shop.orders WHERE status = $1 GROUP BY status", "params": ["paid"]},
        lambda s: rows_of(s)[0][0] == "paid" and rows_of(s)[0][1] > 0,
    ),
    "explain": (
        {"sql": "SELECT * FROM shop.orders WHERE customer_id = $1", "params": [7]},
        lambda s: s["analyzed"] is False and s["total_cost"] is not None,
    ),
}

# every prompt with its arguments; the argument must come back in the prompt's text
PROMPT_CALLS: dict[str, dict[str, str]] = {
    "explore_database": {"question": "Which country buys most?"},
    "investigate_slow_query": {"sql": "SELECT * FROM shop.orders WHERE total > 100"},
}

# what app.py configures for each cacheable method this server answers
CACHE_HINTS: dict[str, tuple[int, str]] = {
    "tools/list": (LIST_TTL_MS, "public"),
    "prompts/list": (LIST_TTL_MS, "public"),
    "resources/list": (LIST_TTL_MS, "public"),
    "resources/templates/list": (LIST_TTL_MS, "public"),
    "resources/read": (READ_TTL_MS, "private"),
}

ANALYZE_TIMEOUT_MS = 300
PROBE = "explain_timeout_probe"  # a column alias; the guard runs the text unchanged, so it marks the backend's query


def call(server: McpServerProcess, tool: str, arguments: dict[str, Any], *, version: str = MODERN) -> dict[str, Any]:
    """A raw tools/call; its JSON-RPC result."""
    status, _, raw = post(server, rpc("tools/call", {"name": tool, "arguments": arguments}, version=version))
    assert status == 200, raw
    result = json.loads(raw)["result"]
    assert isinstance(result, dict)
    return result


def error_of(result: dict[str, Any]) -> str:
    """The text of a raw tool error; fails when the call succeeded."""
    assert result["isError"] is True, result
    assert "structuredContent" not in result or result["structuredContent"] is None, result
    [block] = result["content"]
    assert block["type"] == "text"
    text = block["text"]
    assert isinstance(text, str)
    return text


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_these_tests_cover_the_whole_surface(http_server: McpServerProcess, mode: str) -> None:
    async with http_client(http_server.url, http_server.keys[ALICE], mode=mode) as client:
        assert client.protocol_version == MODES[mode]
        tools = (await client.list_tools()).tools
        prompts = (await client.list_prompts()).prompts
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
    assert [tool.name for tool in tools] == list(TOOL_CALLS)
    assert [prompt.name for prompt in prompts] == list(PROMPT_CALLS)
    assert [str(resource.uri) for resource in resources] == [OVERVIEW_URI]
    assert [template.uri_template for template in templates] == [TABLE_TEMPLATE]


@pytest.mark.anyio
@pytest.mark.parametrize("tool", TOOL_CALLS)
@pytest.mark.parametrize("mode", MODES)
async def test_every_tool_over_http(http_server: McpServerProcess, mode: str, tool: str) -> None:
    arguments, check = TOOL_CALLS[tool]
    async with http_client(http_server.url, http_server.keys[ALICE], mode=mode) as client:
        assert client.protocol_version == MODES[mode]
        structured = await call_checked(client, tool, arguments)
    assert check(structured), structured


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_both_resources_over_http(http_server: McpServerProcess, mode: str) -> None:
    async with http_client(http_server.url, http_server.keys[BOB], mode=mode) as client:
        assert client.protocol_version == MODES[mode]
        overview = (await client.read_resource(OVERVIEW_URI)).contents
        table = (await client.read_resource(ORDERS_URI)).contents
        described = await call_checked(client, "describe_table", {"schema": "shop", "table": "orders"})
    [overview_text] = overview
    [table_text] = table
    assert isinstance(overview_text, TextResourceContents) and isinstance(table_text, TextResourceContents)
    assert (str(overview_text.uri), overview_text.mime_type) == (OVERVIEW_URI, "text/markdown")
    assert overview_text.text.startswith("# Database `app` (PostgreSQL 18")
    assert "- `orders` (table, ~" in overview_text.text
    assert (str(table_text.uri), table_text.mime_type) == (ORDERS_URI, "application/json")
    assert json.loads(table_text.text) == described  # so it validates against describe_table's outputSchema too


@pytest.mark.anyio
@pytest.mark.parametrize("prompt", PROMPT_CALLS)
@pytest.mark.parametrize("mode", MODES)
async def test_every_prompt_over_http(http_server: McpServerProcess, mode: str, prompt: str) -> None:
    arguments = PROMPT_CALLS[prompt]
    async with http_client(http_server.url, http_server.keys[ALICE], mode=mode) as client:
        assert client.protocol_version == MODES[mode]
        result = await client.get_prompt(prompt, arguments)
    assert result.description and result.messages
    [message] = result.messages
    assert message.role == "user" and isinstance(message.content, TextContent)
    for value in arguments.values():
        assert value in message.content.text


@pytest.mark.parametrize("method", CACHE_HINTS)
@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_cacheable_results_carry_the_configured_hint(http_server: McpServerProcess, version: str, method: str) -> None:
    """The SDK's runner fills `ttl_ms`/`cache_scope` from `cache_hints` and dumps them as top-level `ttlMs` and
    `cacheScope` of the result; the 2025-era wire has no such fields and the SDK sieves them out there."""
    params = {"uri": ORDERS_URI} if method == "resources/read" else {}
    headers = {"Mcp-Name": ORDERS_URI} if method == "resources/read" and version == MODERN else {}
    status, _, raw = post(http_server, rpc(method, params, version=version), version=version, headers=headers)
    assert status == 200, raw
    result = json.loads(raw)["result"]
    if version == MODERN:
        ttl_ms, scope = CACHE_HINTS[method]
        assert isinstance(result["ttlMs"], int) and result["ttlMs"] == ttl_ms, result["ttlMs"]
        assert result["cacheScope"] == scope
        assert result["resultType"] == "complete"
    else:
        assert not {"ttlMs", "cacheScope", "resultType"} & set(result), sorted(result)


def test_tool_error_and_rejection_counters(http_server: McpServerProcess) -> None:
    """Each failure moves its own counters by exactly one and leaves the other's alone."""
    series = {
        "database_error": ("pgmcp_tool_errors_total", '{kind="database_error",tool="query"}'),
        "rejected": ("pgmcp_tool_errors_total", '{kind="rejected",tool="query"}'),
        "rule": ("pgmcp_query_rejections_total", '{rule="statement_type"}'),
        "calls_database_error": ("pgmcp_tool_calls_total", '{outcome="database_error",tool="query"}'),
        "calls_rejected": ("pgmcp_tool_calls_total", '{outcome="rejected",tool="query"}'),
    }

    def snapshot() -> dict[str, float]:
        return {label: metric(http_server, name, labels) for label, (name, labels) in series.items()}

    before = snapshot()
    missing = error_of(call(http_server, "query", {"sql": "SELECT * FROM shop.missing_table"}))
    after_missing = snapshot()
    rejected = error_of(call(http_server, "query", {"sql": "DELETE FROM shop.orders"}))
    after_rejected = snapshot()

    assert missing.startswith("query failed: ") and "(SQLSTATE 42P01)" in missing
    assert rejected.startswith("query rejected: ") and "\nrule: statement_type " in rejected
    moved_by_missing = {label: after_missing[label] - before[label] for label in series}
    moved_by_rejected = {label: after_rejected[label] - after_missing[label] for label in series}
    assert moved_by_missing == {
        "database_error": 1, "rejected": 0, "rule": 0, "calls_database_error": 1, "calls_rejected": 0,
    }  # fmt: skip
    assert moved_by_rejected == {
        "database_error": 0, "rejected": 1, "rule": 1, "calls_database_error": 0, "calls_rejected": 1,
    }  # fmt: skip


@pytest.fixture(scope="module")
def analyze_server(pg: NativePostgres) -> Iterator[McpServerProcess]:
    """A second `python -m pgmcp` whose operator allows EXPLAIN ANALYZE, with a short statement timeout."""
    server = start_mcp_process(
        pg,
        keys={ALICE: secrets.token_hex(32)},
        overrides={
            "MCP_ALLOW_EXPLAIN_ANALYZE": "true",
            "MCP_STATEMENT_TIMEOUT": f"{ANALYZE_TIMEOUT_MS}ms",
            "MCP_POOL_TIMEOUT": "200ms",
            "MCP_LOCK_TIMEOUT": "100ms",
            "MCP_POOL_MIN_SIZE": "1",
            "MCP_POOL_MAX_SIZE": "2",
        },
    )
    try:
        yield server
    finally:
        server.cleanup()


def test_explain_analyze_past_the_statement_timeout(
    analyze_server: McpServerProcess, superuser: psycopg.Connection
) -> None:
    timeouts = ("pgmcp_tool_errors_total", '{kind="timeout",tool="explain"}')
    quick = call(analyze_server, "explain", {"sql": "SELECT count(*) FROM shop.order_items", "analyze": True})
    assert quick["isError"] is False and quick["structuredContent"]["analyzed"] is True  # ANALYZE is allowed here
    before = metric(analyze_server, *timeouts)

    slow = f"SELECT count(*) AS {PROBE} FROM generate_series(1, 100000000)"
    message = error_of(call(analyze_server, "explain", {"sql": slow, "analyze": True}))
    after = call(analyze_server, "query", {"sql": "SELECT 1"})

    assert message.startswith(f"query timed out: it ran longer than the {ANALYZE_TIMEOUT_MS} ms statement timeout")
    assert "(SQLSTATE 57014)" in message and "hint: " in message
    assert metric(analyze_server, *timeouts) - before == 1
    assert after["isError"] is False and after["structuredContent"]["rows"] == [[1]]
    running = superuser.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
        [f"%{PROBE}%"],
    ).fetchone()
    assert running == (0,)
