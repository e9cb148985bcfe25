"""The README's MCP Inspector commands (its CLI mode, pinned in tests/clients) against a real server: `tools/list`
prints the six tools, `tools/call` runs `query` and the server audits that call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.mcp_server import McpServerProcess
from tests.fast.clients.helpers import (
    SIX_TOOLS,
    NodeClients,
    audit_lines,
    audited_calls,
    blocks,
    pinned_version,
    run_bash,
    shell_words,
)

SNIPPETS = blocks("### MCP Inspector", "bash")


def method_of(script: str) -> str:
    words = shell_words(script)
    return words[words.index("--method") + 1]


def test_the_readme_shows_a_list_and_a_call_with_the_pinned_inspector() -> None:
    assert sorted(method_of(script) for script in SNIPPETS) == ["tools/call", "tools/list"]
    pinned = f"@modelcontextprotocol/inspector@{pinned_version('@modelcontextprotocol/inspector')}"
    assert all(shell_words(script)[:3] == ["npx", pinned, "--cli"] for script in SNIPPETS)


@pytest.mark.parametrize("script", SNIPPETS, ids=[method_of(script) for script in SNIPPETS])
def test_inspector_cli_snippet(
    clients: NodeClients, server: McpServerProcess, key: str, tmp_path: Path, script: str
) -> None:
    audited = len(audit_lines(server.log_text()))
    env = clients.environment(tmp_path, {"PGMCP_URL": server.url, "PGMCP_API_KEY": key})
    answer = json.loads(run_bash(script, env=env, cwd=clients.clients_dir).stdout)
    if method_of(script) == "tools/list":
        assert [tool["name"] for tool in answer["tools"]] == SIX_TOOLS
        return
    assert answer["isError"] is False, answer
    assert answer["structuredContent"]["rows"] == [[1]]
    calls = audited_calls(server, audited, what="the audit line of the Inspector's tools/call")
    assert calls == [("default", "query", "ok")]
