"""The README's Cursor and VS Code configurations: parsed, their placeholders resolved the way each editor resolves
them, and their URL and headers used by the MCP SDK's streamable-HTTP client against a real server."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from devtools.mcp_server import McpServerProcess
from tests.fast.clients.helpers import (
    DOCUMENTED_URL,
    SIX_TOOLS,
    audit_lines,
    audited_calls,
    list_tools_and_select_one,
    only_block,
    replace_documented,
    resolve_placeholders,
)

# the README's heading of each editor, and the text of its configuration there
CONFIGS = {
    editor: only_block(heading, "json") for editor, heading in (("cursor", "### Cursor"), ("vscode", "### VS Code"))
}
Connection = tuple[str, dict[str, str]]


def cursor_connection(url: str, key: str) -> Connection:
    """~/.cursor/mcp.json: an `mcpServers` entry with a `url` is a remote server; Cursor resolves `${env:NAME}` in
    `url` and `headers` from the environment it started in (here after the README's `export PGMCP_API_KEY=...`)."""
    entry = json.loads(replace_documented(CONFIGS["cursor"], {DOCUMENTED_URL: url}))["mcpServers"]["postgres"]
    assert set(entry) == {"url", "headers"}, entry
    variables = {"env:PGMCP_API_KEY": key}
    headers = {name: resolve_placeholders(value, variables) for name, value in entry["headers"].items()}
    return resolve_placeholders(entry["url"], variables), headers


def vscode_connection(url: str, key: str) -> Connection:
    """.vscode/mcp.json: a `servers` entry of type http; `${input:id}` is the user's answer to the declared input,
    asked once (a password prompt: the key)."""
    config = json.loads(replace_documented(CONFIGS["vscode"], {DOCUMENTED_URL: url}))
    entry = config["servers"]["postgres"]
    assert entry["type"] == "http", entry
    assert [(item["type"], item.get("password")) for item in config["inputs"]] == [("promptString", True)]
    variables = {f"input:{item['id']}": key for item in config["inputs"]}
    headers = {name: resolve_placeholders(value, variables) for name, value in entry["headers"].items()}
    return resolve_placeholders(entry["url"], variables), headers


EDITORS: dict[str, Callable[[str, str], Connection]] = {"cursor": cursor_connection, "vscode": vscode_connection}


@pytest.mark.anyio
@pytest.mark.parametrize("editor", EDITORS)
async def test_editor_configuration_connects(server: McpServerProcess, key: str, editor: str) -> None:
    url, headers = EDITORS[editor](server.url, key)
    assert headers == {"Authorization": f"Bearer {key}"}
    audited = len(audit_lines(server.log_text()))
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
            tools, rows = await list_tools_and_select_one(client)
    assert (tools, rows) == (SIX_TOOLS, [[1]])
    assert audited_calls(server, audited, what=f"the audit line of the {editor} call") == [("default", "query", "ok")]
