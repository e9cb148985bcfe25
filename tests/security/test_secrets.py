"""Secrets never leave the server: not in its logs (audit lines included), not in error messages, not in /metrics.

A real `python -m pgmcp` process gets a battery of calls that succeed, fail, are rejected, or are not even
authenticated, with secret-looking values in every place a caller controls; then its whole log, its /metrics
page and every response body are searched for the API keys, the database password, the presented wrong key
and the bound parameter values. The audit log must still carry one structured line per tool call.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres

KEY_NAME = "auditor"
PARAM_SECRET = "param-" + secrets.token_hex(12)
WRONG_KEY = "wrongkey-" + secrets.token_hex(16)


def request(server: McpServerProcess, method: str, path: str, body: bytes = b"", key: str | None = None) -> bytes:
    headers = {
        "Host": f"127.0.0.1:{server.port}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        return connection.getresponse().read()
    finally:
        connection.close()


def call(server: McpServerProcess, tool: str, arguments: dict[str, Any], key: str | None = None) -> bytes:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    return request(server, "POST", "/mcp", json.dumps(body).encode(), key or server.keys[KEY_NAME])


@pytest.fixture(scope="module")
def exercised(pg: NativePostgres) -> Iterator[tuple[McpServerProcess, list[bytes]]]:
    """The server after the battery, with every response body it sent."""
    server = start_mcp_process(pg, keys={KEY_NAME: secrets.token_hex(32), "second": secrets.token_hex(32)})
    try:
        responses = [
            call(server, "query", {"sql": "SELECT $1::text AS value", "params": [PARAM_SECRET]}),
            call(server, "query", {"sql": "SELECT length($1::text)", "params": [PARAM_SECRET]}),
            call(server, "query", {"sql": "SELECT 1/0 WHERE $1::text IS NOT NULL", "params": [PARAM_SECRET]}),
            call(server, "query", {"sql": "SELECT pg_read_file($1)", "params": [PARAM_SECRET]}),
            call(server, "query", {"sql": "SELECT * FROM shop.no_such_table WHERE x = $1", "params": [PARAM_SECRET]}),
            call(server, "query", {"sql": "SELECT rolpassword FROM pg_authid"}),
            call(server, "query", {"sql": "SELECT current_setting('password_encryption')"}),
            call(server, "explain", {"sql": "SELECT * FROM shop.orders WHERE note = $1", "params": [PARAM_SECRET]}),
            call(server, "describe_table", {"schema": "shop", "table": PARAM_SECRET}),
            call(server, "search_schema", {"pattern": PARAM_SECRET}),
            call(server, "query", {"sql": "SELECT 1"}, key=WRONG_KEY),
            call(server, "query", {"sql": "SELECT 1"}, key=f"{server.keys[KEY_NAME]}x"),
            call(server, "no_such_tool", {"secret": PARAM_SECRET}),
            request(server, "GET", "/readyz"),
        ]
        responses.append(request(server, "GET", "/metrics"))
        yield server, responses
    finally:
        server.cleanup()


def secrets_of(server: McpServerProcess, pg: NativePostgres) -> dict[str, str]:
    found = {f"api key {name}": key for name, key in server.keys.items()}
    found.update(
        {
            "database password": pg.passwords["mcp_reader"],
            "superuser password": pg.passwords["postgres"],
            "presented wrong key": WRONG_KEY,
            "bound parameter value": PARAM_SECRET,
        }
    )
    return found


def test_log_holds_no_secret(exercised: tuple[McpServerProcess, list[bytes]], pg: NativePostgres) -> None:
    server, _ = exercised
    log = server.log_text()
    assert log, "the server logged nothing"
    leaked = [what for what, value in secrets_of(server, pg).items() if value in log]
    assert leaked == []


def test_responses_and_metrics_hold_no_secret(
    exercised: tuple[McpServerProcess, list[bytes]], pg: NativePostgres
) -> None:
    server, responses = exercised
    for what, value in secrets_of(server, pg).items():
        if what == "bound parameter value":
            continue  # the first call echoes its own parameter back as data, by design
        assert not any(value.encode() in body for body in responses), what
    metrics = responses[-1].decode()
    assert 'pgmcp_query_rejections_total{rule="function_denied"}' in metrics
    for value in (*server.keys.values(), pg.passwords["mcp_reader"], WRONG_KEY, PARAM_SECRET):
        assert value not in metrics


def test_errors_do_not_echo_parameters(exercised: tuple[McpServerProcess, list[bytes]]) -> None:
    """Bound values are data: a failed or refused statement's error does not repeat them. (Identifiers a caller
    passes to describe_table are echoed in "not found" errors, and explain shows a plan for the caller's own
    values: both answer the caller with what it sent, and neither is logged.)"""
    _, responses = exercised
    assert PARAM_SECRET.encode() in responses[0]  # the control: the value really was sent
    for body in responses[2:5]:
        assert b'"isError":true' in body, body[:300]
        assert PARAM_SECRET.encode() not in body, body[:300]


def test_one_structured_audit_line_per_tool_call(exercised: tuple[McpServerProcess, list[bytes]]) -> None:
    server, _ = exercised
    audit = [json.loads(line) for line in server.log_text().splitlines() if '"logger": "pgmcp.audit"' in line]
    # ten authenticated calls of known tools; the unauthenticated ones never reach a tool
    assert len(audit) == 10, audit
    assert {line["key"] for line in audit} == {KEY_NAME}
    for line in audit:
        assert {"tool", "outcome", "ms"} <= line.keys()
    rejected = [line for line in audit if line.get("rule")]
    assert [(line["tool"], line["rule"], line["outcome"]) for line in rejected] == [
        ("query", "function_denied", "rejected")
    ]
    # statement text and parameter count on every query line; a fingerprint on each statement that ran
    assert all(line["statement"] and line["params"] == 1 for line in audit[:4]), audit[:4]
    assert all(line.get("fingerprint") for line in audit[:3]), audit[:3]
    first = audit[0]
    assert (first["rows"], first["outcome"]) == (1, "ok") and first["bytes"] > 0


def test_a_wrong_database_password_is_not_logged(pg: NativePostgres, tmp_path: Path) -> None:
    wrong = "dbpass-" + secrets.token_hex(16)
    password_file = tmp_path / "password"
    password_file.write_text(wrong + "\n")
    with pytest.raises(TimeoutError) as failed:
        start_mcp_process(
            pg,
            overrides={"MCP_DATABASE_PASSWORD_FILE": str(password_file), "MCP_STARTUP_TIMEOUT": "2s"},
            timeout=30,
        )
    message = str(failed.value)
    assert "password authentication failed" in message
    assert wrong not in message and pg.passwords["mcp_reader"] not in message
