"""Small assertions shared by the MCP tests."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock
from mcp import Client
from mcp.types import CallToolResult, TextContent


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
