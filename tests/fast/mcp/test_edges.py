"""Every limit pinned at its edge: the last value accepted and the first refused, each refusal naming its limit.
Rows, bytes and cell sizes are pinned in test_caps.py, the per-key concurrency limit in test_http.py; here the
number of parameters, the statement's length and tokens, and the request body."""

from __future__ import annotations

import json

import pytest

from devtools.mcp_server import McpServerProcess
from pgmcp.guard import MAX_SQL_CHARS, MAX_TOKENS
from pgmcp.tools import MAX_PARAMS
from tests.fast.mcp.helpers import HTTP_MAX_REQUEST_BYTES, Connect, call_checked, error_text, rows_of
from tests.fast.mcp.raw_http import post

pytestmark = pytest.mark.anyio


def summing(count: int) -> str:
    """`SELECT $1::int + ... + $count::int`: every parameter used, so only the count limit can refuse it."""
    return "SELECT " + " + ".join(f"${number}::int" for number in range(1, count + 1))


async def test_max_params_is_accepted_and_one_more_is_refused(connect: Connect) -> None:
    async with connect() as client:
        at_limit = await call_checked(client, "query", {"sql": summing(MAX_PARAMS), "params": [1] * MAX_PARAMS})
        over = error_text(
            await client.call_tool("query", {"sql": summing(MAX_PARAMS + 1), "params": [1] * (MAX_PARAMS + 1)})
        )
    assert MAX_PARAMS == 100
    assert rows_of(at_limit) == [[MAX_PARAMS]]
    assert "params" in over and f"at most {MAX_PARAMS} items" in over


def tokens(count: int) -> str:
    """A statement of exactly `count` tokens (count >= 7), flat (no deep nesting): `SELECT cardinality(ARRAY[1,
    1, ...])` has 2n + 6 tokens for n elements, and an alias adds one."""
    elements, odd = divmod(count - 6, 2)
    return f"SELECT cardinality(ARRAY[{','.join(['1'] * elements)}])" + (" n" if odd else "")


async def test_max_tokens_is_accepted_and_one_more_is_refused(connect: Connect) -> None:
    async with connect() as client:
        at_limit = await call_checked(client, "query", {"sql": tokens(MAX_TOKENS)})
        over = error_text(await client.call_tool("query", {"sql": tokens(MAX_TOKENS + 1)}))
    assert rows_of(at_limit) == [[(MAX_TOKENS - 6) // 2]]
    assert "rule: too_large" in over and f"has {MAX_TOKENS + 1} tokens, more than the {MAX_TOKENS}" in over


async def test_max_sql_chars_is_accepted_and_one_more_is_refused(connect: Connect) -> None:
    padded = "SELECT 1 /*" + "x" * (MAX_SQL_CHARS - len("SELECT 1 /**/")) + "*/"
    assert len(padded) == MAX_SQL_CHARS
    async with connect() as client:
        at_limit = await call_checked(client, "query", {"sql": padded})
        over = error_text(await client.call_tool("query", {"sql": padded + " "}))
    assert rows_of(at_limit) == [[1]]
    assert "sql" in over and f"at most {MAX_SQL_CHARS} characters" in over


def body_of(size: int) -> bytes:
    """A valid tools/call request of exactly `size` bytes (the padding is inside a SQL comment)."""
    skeleton = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {}}}
    empty = len(json.dumps({**skeleton, "params": {"name": "query", "arguments": {"sql": "SELECT 1 /**/"}}}))
    sql = "SELECT 1 /*" + "x" * (size - empty) + "*/"
    body = json.dumps({**skeleton, "params": {"name": "query", "arguments": {"sql": sql}}}).encode()
    assert len(body) == size
    return body


def test_a_body_of_max_request_bytes_is_served_and_one_more_byte_is_413(http_server: McpServerProcess) -> None:
    status, _, raw = post(http_server, body_of(HTTP_MAX_REQUEST_BYTES))
    assert status == 200 and json.loads(raw)["result"]["structuredContent"]["rows"] == [[1]]
    status, _, raw = post(http_server, body_of(HTTP_MAX_REQUEST_BYTES + 1))
    assert status == 413 and f"request body larger than {HTTP_MAX_REQUEST_BYTES}" in json.loads(raw)["error"]["message"]
