"""Raw HTTP to a running `python -m pgmcp`: JSON-RPC bodies for either protocol generation, one request with every
header under the test's control, and one Prometheus sample. For the tests that check the wire itself; the others
use `mcp.Client`."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from devtools.mcp_server import McpServerProcess
from tests.fast.mcp.helpers import ALICE

MODERN = "2026-07-28"
LEGACY = "2025-11-25"


def rpc(method: str, params: dict[str, Any] | None = None, *, version: str = LEGACY) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method, "params": dict(params or {})}
    if version == MODERN:
        body["params"]["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return body


def post(
    server: McpServerProcess,
    body: bytes | dict[str, Any],
    *,
    key: str | None = ALICE,
    headers: dict[str, str] | None = None,
    version: str = LEGACY,
    path: str = "/mcp",
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    """One raw request to the server, every header under the test's control."""
    all_headers = {
        "Host": f"127.0.0.1:{server.port}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
    }
    if isinstance(body, dict) and version == MODERN:
        all_headers["Mcp-Method"] = body["method"]
        name = body.get("params", {}).get("name")
        if name:
            all_headers["Mcp-Name"] = name
    if key is not None:
        all_headers["Authorization"] = f"Bearer {server.keys[key]}"
    all_headers.update(headers or {})
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=payload if method == "POST" else None, headers=all_headers)
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def metric(server: McpServerProcess, name: str, labels: str = "") -> float:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/metrics", headers={"Host": f"127.0.0.1:{server.port}"})
    text = connection.getresponse().read().decode()
    connection.close()
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.MULTILINE)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0
