"""The entry point's other modes: `--stdio` for desktop clients, `healthcheck` for the container, `config-table`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from devtools.mcp_server import McpServerProcess, server_environment
from devtools.native_pg import NativePostgres
from devtools.net import free_port
from pgmcp.errors import ExitCode
from pgmcp.generated import render_compose_environment, render_env_table
from tests.fast.mcp.helpers import ok, rows_of


@pytest.mark.anyio
async def test_stdio_serves_the_same_tools_and_logs_to_stderr(pg: NativePostgres, tmp_path: Path) -> None:
    env = server_environment(pg, tmp_path, port=free_port(), keys={})
    env.pop("MCP_API_KEYS_FILE")  # stdio needs no API key
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as errlog:
        parameters = StdioServerParameters(command=sys.executable, args=["-m", "pgmcp", "--stdio"], env=env)
        async with Client(stdio_client(parameters, errlog=errlog), cache=None) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("query", {"sql": "SELECT count(*) FROM shop.products"})
    assert [tool.name for tool in tools][0] == "list_schemas" and len(tools) == 6
    assert rows_of(ok(result)) == [[500]]
    audit = [json.loads(line) for line in stderr_path.read_text().splitlines() if '"pgmcp.audit"' in line]
    assert [(line["key"], line["tool"], line["outcome"]) for line in audit] == [("stdio", "query", "ok")]


def healthcheck(port: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCP_PORT": port}
    return subprocess.run(
        [sys.executable, "-m", "pgmcp", "healthcheck"], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_healthcheck_passes_against_a_serving_server(http_server: McpServerProcess) -> None:
    result = healthcheck(str(http_server.port))
    assert (result.returncode, result.stderr) == (0, "")


def test_healthcheck_fails_when_nothing_listens() -> None:
    port = free_port()
    result = healthcheck(str(port))
    assert result.returncode == 1
    assert f"healthcheck: GET http://127.0.0.1:{port}/healthz failed:" in result.stderr


def test_healthcheck_refuses_a_bad_port() -> None:
    result = healthcheck("eighty")
    assert result.returncode == 1 and "MCP_PORT='eighty' is not a port number" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["settings", "--markdown"], render_env_table()),
        (["settings", "--compose"], render_compose_environment()),
        (["config-table"], render_env_table()),
    ],
    ids=["markdown", "compose", "old-name"],
)
def test_settings_prints_the_generated_blocks(args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgmcp", *args], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == expected
    assert ("deprecated" in result.stderr) is (args == ["config-table"])


def test_settings_options_belong_to_the_settings_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgmcp", "healthcheck", "--compose"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == ExitCode.USAGE == 2
    assert "go with the settings command" in result.stderr


def test_http_refuses_to_start_without_keys(pg: NativePostgres, tmp_path: Path) -> None:
    env = server_environment(pg, tmp_path, port=free_port(), keys={})
    env.pop("MCP_API_KEYS_FILE")
    result = subprocess.run(
        [sys.executable, "-m", "pgmcp"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == ExitCode.CONFIG
    assert "no API keys and no OAuth issuer: set MCP_API_KEYS_FILE" in result.stderr
