"""Small helpers every tier uses. No sleeps in tests: wait for a condition, with a deadline (`wait_until`, which
lives in devtools/wait.py so that the benchmarks and ops/ poll the same way)."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devtools.wait import WaitTimeout, wait_until

__all__ = ["WaitTimeout", "query_call", "read_only", "tool_call", "wait_until"]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) read-only even for root, whom mode bits do not stop: a read-only bind
    mount of it onto itself, undone afterwards. Bind mounts made of it before (a container's) are not affected.
    Needs root, as in CI."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def query_call(host: str, port: int, key: str, sql: str) -> dict[str, Any]:
    """One `query` tool call over the 2026-07-28 protocol (raw JSON-RPC, one connection), to `host:port/mcp`:
    the result object; anything but HTTP 200 fails the test."""
    return tool_call(host, port, key, "query", {"sql": sql})


def tool_call(
    host: str, port: int, key: str, tool: str, arguments: dict[str, Any], timeout: float = 30
) -> dict[str, Any]:
    """One tool call over the 2026-07-28 protocol (raw JSON-RPC, one connection), to `host:port/mcp`: the result
    object; anything but HTTP 200 fails the test."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": META},
    }
    headers = {
        "Host": f"{host}:{port}",
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", "/mcp", body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    assert response.status == 200, f"HTTP {response.status}: {text[:300]}"
    result: dict[str, Any] = json.loads(text)["result"]
    return result
