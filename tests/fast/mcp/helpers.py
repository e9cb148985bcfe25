"""Helpers shared by the MCP tests (the fixtures are in conftest.py): the key names and HTTP limits of the session
server, the SDK client over HTTP, and small assertions on tool results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, TextContent

ALICE = "alice"
BOB = "bob"
HTTP_CONCURRENCY = 2
HTTP_MAX_REQUEST_BYTES = 64 * 1024

Connect = Callable[..., AbstractAsyncContextManager[Client]]


@asynccontextmanager
async def http_client(url: str, key: str | None, *, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's own client over streamable HTTP, with a bearer key."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
            yield client


def text_of(result: CallToolResult) -> str:
    """The text block of a tool result (every tool returns exactly one)."""
    assert len(result.content) == 1, result.content
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful result."""
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """The message of a tool error; fails when the call succeeded."""
    assert result.is_error, f"expected a tool error, got {result.structured_content!r}"
    assert result.structured_content is None
    return text_of(result)


async def call_checked(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool and check its structured content against the tool's advertised outputSchema."""
    tools = {item.name: item for item in (await client.list_tools()).tools}
    result = await client.call_tool(tool, arguments)
    structured = ok(result)
    schema = tools[tool].output_schema
    assert schema is not None, f"{tool} advertises no outputSchema"
    jsonschema.validate(structured, schema)
    return structured


def rows_of(structured: dict[str, Any]) -> list[list[Any]]:
    rows = structured["rows"]
    assert isinstance(rows, list)
    return rows
