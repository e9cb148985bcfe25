"""The `mcp` container of the Compose stack: a real MCP client reaches it on 127.0.0.1 and queries the demo data;
with postgres stopped it answers clear, transient tool errors; when postgres is back it serves again without
being restarted."""

from __future__ import annotations

import http.client
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.fixtures.stack import Stack
from tests.helpers import wait_until

RECOVERY_TIMEOUT_S = 120


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def mcp_client(stack: Stack, *, mode: str = "auto") -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {stack.api_key}"}) as http:
        async with Client(streamable_http_client(stack.mcp_url, http_client=http), mode=mode, cache=None) as client:
            yield client


def get(stack: Stack, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.mcp_port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{stack.mcp_port}", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_a_real_client_queries_the_demo_data(stack: Stack, mode: str, version: str) -> None:
    with psycopg.connect(stack.dsn()) as conn:
        expected = conn.execute("SELECT count(*), sum(total)::text FROM shop.orders").fetchone()
    async with mcp_client(stack, mode=mode) as client:
        assert client.protocol_version == version
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("query", {"sql": "SELECT count(*), sum(total) FROM shop.orders"})
        tables = await client.call_tool("list_tables", {"schema": "shop"})
    assert tools == ["list_schemas", "list_tables", "describe_table", "search_schema", "query", "explain"]
    assert not result.is_error and result.structured_content is not None
    assert expected is not None and result.structured_content["rows"] == [[expected[0], expected[1]]]
    assert not tables.is_error and tables.structured_content is not None
    assert {table["name"] for table in tables.structured_content["tables"]} >= {"orders", "customers"}


def test_the_published_port_enforces_keys_and_hosts(stack: Stack) -> None:
    assert get(stack, "/healthz") == (200, '{"status":"ok"}')
    status, body = get(stack, "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    assert get(stack, "/healthz", {"Host": "evil.example"})[0] == 421
    connection = http.client.HTTPConnection("127.0.0.1", stack.mcp_port, timeout=10)
    connection.request(
        "POST",
        "/mcp",
        body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        headers={
            "Host": f"localhost:{stack.mcp_port}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    response = connection.getresponse()
    assert response.status == 401 and response.getheader("WWW-Authenticate") == 'Bearer realm="pgmcp"'
    connection.close()


def test_the_container_health_check_is_the_cli(stack: Stack) -> None:
    result = stack.exec("mcp", "python", "-m", "pgmcp", "healthcheck")
    assert result.returncode == 0
    state = stack.container("mcp").attrs["State"]
    assert state["Health"]["Status"] == "healthy"


@pytest.mark.anyio
async def test_postgres_down_gives_tool_errors_and_service_returns_without_restarting_mcp(fresh_stack: Stack) -> None:
    mcp_before = fresh_stack.container("mcp").attrs
    fresh_stack.compose("stop", "postgres")
    try:
        async with mcp_client(fresh_stack, mode="legacy") as client:
            result = await client.call_tool("query", {"sql": "SELECT count(*) FROM shop.orders"})
        assert result.is_error
        message = result.content[0].text  # type: ignore[union-attr]
        assert message.startswith("database unavailable: ") and "This is transient: retry in about 5 seconds" in message
        status, body = get(fresh_stack, "/readyz")
        assert status == 503 and json.loads(body)["status"] == "unavailable"
        assert get(fresh_stack, "/healthz")[0] == 200  # alive: Docker must not restart it for this
    finally:
        fresh_stack.compose("start", "postgres")
    fresh_stack.wait_healthy("postgres")

    async def answers() -> bool:
        async with mcp_client(fresh_stack) as client:
            result = await client.call_tool("query", {"sql": "SELECT count(*) FROM shop.orders"})
        return not result.is_error

    deadline = anyio.current_time() + RECOVERY_TIMEOUT_S
    while not await answers():
        assert anyio.current_time() < deadline, f"mcp did not serve again {RECOVERY_TIMEOUT_S} s after postgres"
        await anyio.sleep(1)  # poll interval
    wait_until(lambda: get(fresh_stack, "/readyz")[0] == 200, timeout=30, what="/readyz after postgres returned")
    mcp_after = fresh_stack.container("mcp").attrs
    assert mcp_after["State"]["StartedAt"] == mcp_before["State"]["StartedAt"]
    assert mcp_after["RestartCount"] == mcp_before["RestartCount"]
