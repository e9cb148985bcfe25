"""The README's Claude Desktop entries, spawned as the app spawns them: pgmcp over stdio from the virtualenv the
README's install lines create, and the `mcp-remote` bridge (pinned in tests/clients) in front of a real HTTP server,
each driven by the MCP SDK's stdio client."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from devtools.mcp_server import McpServerProcess
from devtools.native_pg import NativePostgres
from devtools.paths import REPO
from tests.fast.clients.helpers import (
    DOCUMENTED_URL,
    SIX_TOOLS,
    NodeClients,
    audit_lines,
    audited_calls,
    blocks,
    list_tools_and_select_one,
    only_block,
    pinned_version,
    replace_documented,
    run_bash,
)

DESKTOP = "### Claude Desktop"
INSTALL = only_block(DESKTOP, "bash")
CONFIGS = blocks(DESKTOP, "json")
INSTALL_TIMEOUT_S = 600


def postgres_entry(config: str) -> dict[str, Any]:
    """The one `mcpServers` entry of a claude_desktop_config.json snippet."""
    servers: dict[str, dict[str, Any]] = json.loads(config)["mcpServers"]
    assert list(servers) == ["postgres"], servers
    return servers["postgres"]


def test_the_readme_gives_a_stdio_entry_and_a_bridge_entry() -> None:
    entries = [postgres_entry(config) for config in CONFIGS]
    assert [entry["command"] for entry in entries] == ["/home/you/.local/share/pgmcp/bin/python", "npx"]
    assert all(
        os.path.isabs(value) for value in (entries[0]["command"], entries[0]["env"]["MCP_DATABASE_PASSWORD_FILE"])
    )


@pytest.mark.slow
@pytest.mark.anyio
async def test_pgmcp_over_stdio_as_installed_and_configured(pg: NativePostgres, tmp_path: Path) -> None:
    home, clone = tmp_path / "home", tmp_path / "pgstack"
    home.mkdir()
    # a clone's services/mcp: pip builds the package in its source tree, which must not be this worktree
    shutil.copytree(
        REPO / "services" / "mcp",
        clone / "services" / "mcp",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    password_file = clone / "compose" / "secrets" / "mcp_reader_password"
    password_file.parent.mkdir(parents=True)
    password_file.write_text(pg.passwords["mcp_reader"] + "\n")
    password_file.chmod(0o600)
    env = {name: value for name, value in os.environ.items() if not name.startswith("MCP_")} | {"HOME": str(home)}
    printed = run_bash(INSTALL, env=env, cwd=clone, timeout=INSTALL_TIMEOUT_S).stdout.splitlines()[-1]

    replacements = {"/home/you": str(home), "/path/to/pgstack": str(clone), '"5432"': json.dumps(str(pg.port))}
    entry = postgres_entry(replace_documented(CONFIGS[0], replacements))
    assert entry["command"] == printed  # the path the install prints is the one the entry needs
    assert entry["env"]["MCP_DATABASE_HOST"] == pg.host
    # the app's environment: a few safe variables (the SDK's default, as the app's) plus the entry's env
    parameters = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"])
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(parameters, errlog=errlog), cache=None) as client:
            tools, rows = await list_tools_and_select_one(client)
    assert (tools, rows) == (SIX_TOOLS, [[1]])
    audit = audit_lines(stderr_path.read_text())
    assert [(line["key"], line["tool"], line["outcome"]) for line in audit] == [("stdio", "query", "ok")]


@pytest.mark.anyio
async def test_mcp_remote_bridge_as_configured(
    clients: NodeClients, server: McpServerProcess, key: str, tmp_path: Path
) -> None:
    entry = postgres_entry(replace_documented(CONFIGS[1], {DOCUMENTED_URL: server.url, "<key>": key}))
    assert f"mcp-remote@{pinned_version('mcp-remote')}" in entry["args"]
    # npx runs in the clients' directory, so `mcp-remote@<pin>` is the pinned install (npm is offline)
    parameters = StdioServerParameters(
        command=entry["command"],
        args=entry["args"],
        env=clients.environment(tmp_path, entry["env"]),
        cwd=clients.clients_dir,
    )
    audited = len(audit_lines(server.log_text()))
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(parameters, errlog=errlog), cache=None) as client:
            tools, rows = await list_tools_and_select_one(client)
    assert (tools, rows) == (SIX_TOOLS, [[1]]), stderr_path.read_text()
    calls = audited_calls(server, audited, what="the audit line of the call through mcp-remote")
    assert calls == [("default", "query", "ok")]
