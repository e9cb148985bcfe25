"""HTTP abuse against `python -m pgmcp` (the real process, on 127.0.0.1): header/body mismatches on 2026-07-28
requests, unsupported protocol versions, invalid UTF-8, deeply nested JSON, huge parameter arrays, batches and
odd content types. Every request gets a 4xx or a tool error, never a 500 and never an executed tool call, and
the server answers normally afterwards.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
KEY_NAME = "abuser"


@pytest.fixture(scope="module")
def server(pg: NativePostgres) -> Iterator[McpServerProcess]:
    process = start_mcp_process(pg, keys={KEY_NAME: secrets.token_hex(32)})
    try:
        yield process
    finally:
        process.cleanup()


def modern_body(method: str, params: dict[str, Any] | None = None, *, version: str = MODERN) -> dict[str, Any]:
    meta = {"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}}
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**(params or {}), "_meta": meta}}


def send(server: McpServerProcess, body: bytes | dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    all_headers = {
        "Host": f"127.0.0.1:{server.port}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {server.keys[KEY_NAME]}",
        **headers,
    }
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("POST", "/mcp", skip_host=True, skip_accept_encoding=True)
        for name, value in all_headers.items():
            connection.putheader(name, value.encode("latin-1", errors="surrogateescape"))
        connection.putheader("Content-Length", str(len(payload)))
        connection.endheaders(payload)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def tool_calls_logged(server: McpServerProcess) -> int:
    return sum('"pgmcp.audit"' in line for line in server.log_text().splitlines())


QUERY = {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}}

MISMATCHES = {
    "method-header-lies": (modern_body("tools/call", QUERY), {"Mcp-Method": "tools/list", "Mcp-Name": "query"}),
    "name-header-lies": (modern_body("tools/call", QUERY), {"Mcp-Method": "tools/call", "Mcp-Name": "list_tables"}),
    "name-header-case": (modern_body("tools/call", QUERY), {"Mcp-Method": "tools/call", "Mcp-Name": "QUERY"}),
    "name-header-missing": (modern_body("tools/call", QUERY), {"Mcp-Method": "tools/call"}),
    "method-header-missing": (modern_body("tools/call", QUERY), {"Mcp-Name": "query"}),
    "body-older-than-version-header": (
        modern_body("tools/call", QUERY, version=LEGACY),
        {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "query"},
    ),
}


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_header_body_mismatch_is_refused_before_the_tool_runs(server: McpServerProcess, name: str) -> None:
    body, headers = MISMATCHES[name]
    before = tool_calls_logged(server)
    status, raw = send(server, body, {"MCP-Protocol-Version": MODERN, **headers})
    assert status == 400, raw
    assert "error" in json.loads(raw)
    assert tool_calls_logged(server) == before


@pytest.mark.parametrize("version", ["2099-01-01", "1.0", "2026-07-28x", "", "2025-13-45", "x" * 4000])
def test_unsupported_protocol_versions_are_400(server: McpServerProcess, version: str) -> None:
    body = modern_body("tools/call", QUERY, version=version)
    status, raw = send(server, body, {"MCP-Protocol-Version": version, "Mcp-Method": "tools/call", "Mcp-Name": "query"})
    assert status == 400, raw
    assert "error" in json.loads(raw)


RAW_BODIES = {
    "invalid-utf8-in-sql": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query",'
    b'"arguments":{"sql":"SELECT \xff\xfe 1"}}}',
    "invalid-utf8-overlong": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"\xc0\xaf"}}',
    "nested-arrays": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "nested-in-arguments": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":'
    b'{"sql":' + b"[" * 20_000 + b"]" * 20_000 + b"}}}",
    "batch": json.dumps(
        [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    ).encode(),
    "truncated": b'{"jsonrpc":"2.0","id":1,"method":"tools/ca',
    "not-json": b"SELECT 1; DROP TABLE shop.orders",
    "empty": b"",
}


@pytest.mark.parametrize("version", [LEGACY, MODERN])
@pytest.mark.parametrize("name", sorted(RAW_BODIES))
def test_malformed_bodies_are_4xx(server: McpServerProcess, name: str, version: str) -> None:
    headers = {"MCP-Protocol-Version": version}
    if version == MODERN:
        headers.update({"Mcp-Method": "tools/call", "Mcp-Name": "query"})
    before = tool_calls_logged(server)
    status, _ = send(server, RAW_BODIES[name], headers)
    assert 400 <= status < 500
    assert tool_calls_logged(server) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_wrong_content_type_is_4xx(server: McpServerProcess, content_type: str) -> None:
    status, _ = send(server, modern_body("tools/list"), {"Content-Type": content_type, "Mcp-Method": "tools/list"})
    assert 400 <= status < 500


@pytest.mark.parametrize("count", [1_000, 60_000])
def test_huge_parameter_arrays_are_refused(server: McpServerProcess, count: int) -> None:
    arguments = {"sql": "SELECT $1::int", "params": list(range(count))}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": arguments}}
    status, raw = send(server, body, {"MCP-Protocol-Version": LEGACY})
    if status == 200:
        result = json.loads(raw)
        refused = result.get("error") or result["result"]["isError"]
        assert refused, raw[:500]
    else:
        assert status == 413


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("SELECT 1\u0000; DROP TABLE shop.orders", "NUL character"),
        ("SELECT '\ud800'", "Parse error"),
        ("SELECT " + "(SELECT " * 5000 + "1" + ")" * 5000, "rule: syntax"),
        ("SELECT " + "+".join(["1"] * 30000), "rule: too_large"),
    ],
    ids=["nul", "lone-surrogate", "deep-subselects", "too-many-tokens"],
)
def test_hostile_sql_text_over_http_is_refused(server: McpServerProcess, sql: str, words: str) -> None:
    """A tool error naming the reason; or, for text JSON cannot carry (a lone surrogate), a JSON-RPC parse error."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": sql}}}
    status, raw = send(server, json.dumps(body).encode(), {"MCP-Protocol-Version": LEGACY})
    answer = json.loads(raw)
    if status == 400:
        assert answer["error"]["code"] == -32700 and words in answer["error"]["message"]
    else:
        assert status == 200, raw[:300]
        assert answer["result"]["isError"] and words in answer["result"]["content"][0]["text"]


def test_deep_parentheses_are_just_sql(server: McpServerProcess) -> None:
    sql = "SELECT " + "(" * 5000 + "1" + ")" * 5000 + " AS one"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": sql}}}
    status, raw = send(server, json.dumps(body).encode(), {"MCP-Protocol-Version": LEGACY})
    assert status == 200 and json.loads(raw)["result"]["structuredContent"]["rows"] == [[1]]


def test_the_server_survived_all_of_it(server: McpServerProcess) -> None:
    """Runs last in this module: the process is alive, answers a normal call, and never failed a request."""
    assert server.process.poll() is None
    body = modern_body("tools/call", QUERY)
    status, raw = send(server, body, {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "query"})
    assert status == 200, raw
    assert json.loads(raw)["result"]["structuredContent"]["rows"] == [[1]]
    log = server.log_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log and " 500 " not in log
