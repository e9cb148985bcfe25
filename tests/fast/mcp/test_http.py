"""HTTP: the security middleware, the operational endpoints and both protocol generations, against
`python -m pgmcp` bound to 0.0.0.0 (as in the container) and reached on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from mcp.shared.exceptions import MCPError

from devtools.mcp_server import McpServerProcess
from tests.fast.mcp.helpers import ALICE, BOB, HTTP_CONCURRENCY, HTTP_MAX_REQUEST_BYTES, http_client, ok, rows_of
from tests.fast.mcp.raw_http import LEGACY, MODERN, metric, post, rpc
from tests.helpers import wait_until


def test_the_server_is_bound_to_every_interface(http_server: McpServerProcess) -> None:
    assert f"serving MCP on http://0.0.0.0:{http_server.port}/mcp" in http_server.log_text()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_need_no_key(http_server: McpServerProcess, path: str) -> None:
    status, _, body = post(http_server, b"", key=None, path=path, method="GET")
    assert status == 200
    assert json.loads(body)["status"] == ("ok" if path == "/healthz" else "ready")


def test_missing_key_is_401_with_a_challenge(http_server: McpServerProcess) -> None:
    status, headers, body = post(http_server, rpc("tools/list"), key=None)
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="pgmcp"'
    assert json.loads(body)["error"]["message"].startswith("missing API key: send `Authorization: Bearer <key>`")


def test_an_unknown_key_is_401_invalid_token(http_server: McpServerProcess) -> None:
    authorization = "Bearer not-a-key-of-this-server"
    status, headers, body = post(http_server, rpc("tools/list"), key=None, headers={"Authorization": authorization})
    message = "unknown API key: check the key, or ask the operator for a new one"
    assert (status, headers["www-authenticate"]) == (
        401,
        f'Bearer realm="pgmcp", error="invalid_token", error_description="{message}"',
    )
    assert json.loads(body)["error"]["message"] == message


@pytest.mark.parametrize("authorization", ["Basic YWxpY2U6c2VjcmV0", "Bearer ", "bearer"])
def test_a_malformed_authorization_header_is_401_invalid_request(
    http_server: McpServerProcess, authorization: str
) -> None:
    status, headers, body = post(http_server, rpc("tools/list"), key=None, headers={"Authorization": authorization})
    assert status == 401 and 'error="invalid_request"' in headers["www-authenticate"]
    assert json.loads(body)["error"]["message"] == "the Authorization header must be `Bearer <an API key>`"


def test_keys_are_case_sensitive(http_server: McpServerProcess) -> None:
    wrong = http_server.keys[ALICE].upper()
    status, _, _ = post(http_server, rpc("tools/list"), key=None, headers={"Authorization": f"Bearer {wrong}"})
    assert status == 401


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "null", "file://"])
def test_foreign_origin_is_403(http_server: McpServerProcess, origin: str) -> None:
    status, _, body = post(http_server, rpc("tools/list"), headers={"Origin": origin})
    assert status == 403 and "is not allowed to call this server" in json.loads(body)["error"]["message"]


def test_allowed_origin_gets_cors_headers(http_server: McpServerProcess) -> None:
    status, headers, _ = post(http_server, rpc("tools/list"), headers={"Origin": "http://localhost:6274"})
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:6274"
    preflight = post(
        http_server,
        b"",
        key=None,
        method="OPTIONS",
        headers={"Origin": "http://127.0.0.1:6274", "Access-Control-Request-Method": "POST"},
    )
    assert preflight[0] == 204 and "mcp-protocol-version" in preflight[1]["access-control-allow-headers"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.2:8080", "", "[::1"])
@pytest.mark.parametrize("path", ["/mcp", "/healthz"])
def test_foreign_host_is_421(http_server: McpServerProcess, host: str, path: str) -> None:
    status, _, body = post(http_server, rpc("tools/list"), headers={"Host": host}, path=path)
    assert status == 421 and "is not accepted by this server" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "mcp:8080", "MCP:80", "[::1]:9999"])
def test_loopback_and_the_compose_service_name_are_accepted(http_server: McpServerProcess, host: str) -> None:
    status, _, body = post(http_server, rpc("tools/list"), headers={"Host": host})
    assert status == 200, body


def test_oversized_body_is_413(http_server: McpServerProcess) -> None:
    big = rpc("tools/call", {"name": "query", "arguments": {"sql": "SELECT '" + "x" * HTTP_MAX_REQUEST_BYTES + "'"}})
    status, _, body = post(http_server, big)
    assert status == 413 and "request body larger than" in json.loads(body)["error"]["message"]


def test_oversized_chunked_body_is_413(http_server: McpServerProcess) -> None:
    chunk = b"x" * 8192

    def chunks() -> Iterator[bytes]:
        for _ in range(HTTP_MAX_REQUEST_BYTES // len(chunk) + 2):
            yield chunk

    connection = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=30)
    connection.request(
        "POST",
        "/mcp",
        body=chunks(),
        encode_chunked=True,
        headers={
            "Host": f"127.0.0.1:{http_server.port}",
            "Authorization": f"Bearer {http_server.keys[ALICE]}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    response = connection.getresponse()
    assert response.status == 413
    connection.close()


@pytest.mark.parametrize("version", [LEGACY, MODERN])
def test_malformed_json_is_a_json_rpc_parse_error(http_server: McpServerProcess, version: str) -> None:
    headers = {"Mcp-Method": "tools/list"} if version == MODERN else {}
    status, _, body = post(http_server, b'{"jsonrpc": "2.0", "id": 1, "method": ', version=version, headers=headers)
    assert status == 400 and json.loads(body)["error"]["code"] == -32700


def test_get_and_delete_are_405_on_a_stateless_endpoint(http_server: McpServerProcess) -> None:
    for method in ("GET", "DELETE"):
        status, headers, _ = post(http_server, b"", method=method, headers={"Accept": "text/event-stream"})
        assert status == 405 and headers["allow"] == "POST"


def test_unsupported_protocol_version_is_rejected(http_server: McpServerProcess) -> None:
    body = rpc("tools/list", version=MODERN)
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    status, _, raw = post(http_server, body, version="2099-01-01", headers={"Mcp-Method": "tools/list"})
    error = json.loads(raw)["error"]
    assert status == 400 and "2099-01-01" in json.dumps(error), error


def test_modern_header_body_mismatch_is_rejected(http_server: McpServerProcess) -> None:
    body = rpc("tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}}, version=MODERN)
    status, _, raw = post(http_server, body, version=MODERN, headers={"Mcp-Name": "list_tables"})
    assert status == 400 and json.loads(raw)["error"]["code"] == -32020
    status, _, raw = post(http_server, body, version="2099-01-01", headers={"Mcp-Method": "tools/call"})
    assert status == 400 and "mcp-protocol-version header does not match" in json.loads(raw)["error"]["message"]


@pytest.mark.parametrize("version", [LEGACY, MODERN])
def test_raw_tools_call_on_both_versions(http_server: McpServerProcess, version: str) -> None:
    status, _, raw = post(
        http_server,
        rpc("tools/call", {"name": "query", "arguments": {"sql": "SELECT 40 + 2 AS answer"}}, version=version),
        version=version,
    )
    assert status == 200
    result = json.loads(raw)["result"]
    assert result["isError"] is False and result["structuredContent"]["rows"] == [[42]]


def test_concurrency_limit_is_per_key_with_retry_after(http_server: McpServerProcess) -> None:
    """Requests whose body is still arriving occupy a slot: hold the limit open with partial uploads."""
    held: list[socket.socket] = []
    try:
        for _ in range(HTTP_CONCURRENCY):
            sock = socket.create_connection(("127.0.0.1", http_server.port), timeout=30)
            sock.sendall(
                (
                    f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{http_server.port}\r\n"
                    f"Authorization: Bearer {http_server.keys[ALICE]}\r\nContent-Type: application/json\r\n"
                    "Accept: application/json\r\nContent-Length: 1000\r\n\r\n{"
                ).encode()
            )
            held.append(sock)
        labels = f'{{key="{ALICE}"}}'
        wait_until(
            lambda: metric(http_server, "pgmcp_requests_in_flight", labels) == HTTP_CONCURRENCY,
            timeout=10,
            what=f"{HTTP_CONCURRENCY} requests of {ALICE} in flight",
        )
        status, headers, body = post(http_server, rpc("tools/list"), key=ALICE)
        assert status == 429 and headers["retry-after"] == "1"
        assert (
            f"too many concurrent requests for key '{ALICE}' (limit {HTTP_CONCURRENCY})"
            in json.loads(body)["error"]["message"]
        )
        assert post(http_server, rpc("tools/list"), key=BOB)[0] == 200
    finally:
        for sock in held:
            sock.close()
    wait_until(
        lambda: metric(http_server, "pgmcp_requests_in_flight", f'{{key="{ALICE}"}}') == 0,
        timeout=10,
        what="the held requests to end",
    )
    assert post(http_server, rpc("tools/list"), key=ALICE)[0] == 200


def test_metrics(http_server: McpServerProcess) -> None:
    """Each counter moves by exactly what this test did (deltas: other tests share the server), the latency
    histogram counts the call, and no key's secret appears."""
    watched = {
        "ok": ("pgmcp_tool_calls_total", '{outcome="ok",tool="query"}'),
        "refused": ("pgmcp_query_rejections_total", '{rule="statement_type"}'),
        "unauthorized": ("pgmcp_http_rejections_total", '{reason="unauthorized"}'),
        "timed": ("pgmcp_tool_call_duration_seconds_count", '{tool="query"}'),
    }
    before = {name: metric(http_server, *series) for name, series in watched.items()}
    post(http_server, rpc("tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}}))
    post(http_server, rpc("tools/call", {"name": "query", "arguments": {"sql": "DELETE FROM shop.orders"}}))
    post(http_server, rpc("tools/list"), key=None)
    status, headers, raw = post(http_server, b"", key=None, path="/metrics", method="GET")
    text = raw.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    after = {name: metric(http_server, *series) for name, series in watched.items()}
    assert {name: after[name] - before[name] for name in watched} == {
        "ok": 1,
        "refused": 1,
        "unauthorized": 1,
        "timed": 2,  # the refused call is timed too
    }
    assert metric(http_server, "pgmcp_pool_connections", '{state="open"}') >= 1
    assert 'pgmcp_tool_call_duration_seconds_bucket{le="0.005",tool="query"}' in text
    for key in http_server.keys.values():
        assert key not in text


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "version"), [("auto", MODERN), ("legacy", LEGACY)])
async def test_sdk_client_over_http(http_server: McpServerProcess, mode: str, version: str) -> None:
    async with http_client(http_server.url, http_server.keys[BOB], mode=mode) as client:
        assert client.protocol_version == version
        tools = (await client.list_tools()).tools
        result = await client.call_tool(
            "query", {"sql": "SELECT count(*) FROM shop.orders WHERE status = $1", "params": ["paid"]}
        )
        overview = (await client.read_resource("pg://overview")).contents
        prompt = await client.get_prompt("explore_database", {})
    assert len(tools) == 6 and rows_of(ok(result))[0][0] > 0
    assert "shop" in overview[0].text  # type: ignore[union-attr]
    assert prompt.messages
    audit = [json.loads(line) for line in http_server.log_text().splitlines() if '"pgmcp.audit"' in line]
    assert any(line["key"] == BOB and line["statement"].endswith("WHERE status = $1") for line in audit)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_without_key_sees_the_reason(http_server: McpServerProcess, mode: str) -> None:
    with pytest.raises(ExceptionGroup) as refused:
        async with http_client(http_server.url, None, mode=mode) as client:
            await client.list_tools()
    matched, _ = refused.value.split(MCPError)
    assert matched is not None
    errors = [error for error in _leaves(matched) if isinstance(error, MCPError)]
    assert errors and errors[0].error.message.startswith("missing API key")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def test_audit_lines_never_hold_secrets(http_server: McpServerProcess) -> None:
    post(
        http_server,
        rpc("tools/call", {"name": "query", "arguments": {"sql": "SELECT $1::text", "params": ["s3cr3t-v4lue"]}}),
    )
    log = http_server.log_text()
    assert "s3cr3t-v4lue" not in log
    for key in http_server.keys.values():
        assert key not in log
    audit = [json.loads(line) for line in log.splitlines() if '"pgmcp.audit"' in line]
    assert any(line.get("params") == 1 and line["statement"] == "SELECT $1::text" for line in audit)
