"""The README's Claude Code lines, run with Claude Code's own CLI (pinned in tests/clients) and a throwaway HOME:
`claude mcp add` stores the server with its header, and `claude mcp list` connects to it, only with the right key."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.mcp_server import McpServerProcess
from tests.fast.clients.helpers import (
    DOCUMENTED_URL,
    NodeClients,
    only_block,
    replace_documented,
    run_bash,
    shell_words,
    unauthorized_count,
)

SCRIPT = only_block("### Claude Code", "bash")
EXPECTED = only_block("### Claude Code", "text")


def run_claude(clients: NodeClients, server: McpServerProcess, key: str, tmp_path: Path) -> tuple[str, Path, Path]:
    """(output of the README's lines, HOME, project directory): Claude Code keeps `local` servers per project."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = clients.environment(home, {"PGMCP_URL": server.url, "PGMCP_API_KEY": key})
    return run_bash(SCRIPT, env=env, cwd=project).stdout, home, project


def test_the_header_comes_after_the_name_and_the_url() -> None:
    # in 2.1.197 --header takes several values: anything after it would be read as one more header
    add = shell_words(SCRIPT.splitlines()[0])
    assert add[:5] == ["claude", "mcp", "add", "--transport", "http"]
    assert add.index("--header") > add.index("$PGMCP_URL") > add.index("postgres")
    assert shell_words(SCRIPT.splitlines()[1]) == ["claude", "mcp", "list"]


def test_claude_code_connects_as_the_readme_says(
    clients: NodeClients, server: McpServerProcess, key: str, tmp_path: Path
) -> None:
    output, home, project = run_claude(clients, server, key, tmp_path)
    expected = replace_documented(EXPECTED, {DOCUMENTED_URL: server.url}).strip()
    assert expected in output.splitlines(), output
    stored = json.loads((home / ".claude.json").read_text())["projects"][str(project)]["mcpServers"]
    assert stored == {"postgres": {"type": "http", "url": server.url, "headers": {"Authorization": f"Bearer {key}"}}}


def test_claude_code_does_not_connect_with_a_wrong_key(
    clients: NodeClients, server: McpServerProcess, tmp_path: Path
) -> None:
    refused = unauthorized_count(server)
    output, _, _ = run_claude(clients, server, "not-the-key", tmp_path)
    listed = [line for line in output.splitlines() if line.startswith("postgres: ")]
    assert listed == [f"postgres: {server.url} (HTTP) - ✘ Failed to connect"], output
    assert unauthorized_count(server) > refused
