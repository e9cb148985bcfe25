"""What `make bench` and `make load` share: a private native PostgreSQL with the demo data (and, for memory
figures, a 1M-row table), `python -m pgmcp` in front of it, and a lean keep-alive HTTP/1.1 client for JSON-RPC
calls (the SDK client spends more time validating than the server spends answering, so it would measure itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
BIG_TABLE_ROWS = 1_000_000


def create_big_table(server: NativePostgres, rows: int = BIG_TABLE_ROWS) -> None:
    """shop.big: `rows` rows of about 100 bytes, owned by app_owner (so the reader may SELECT it), analyzed."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SET ROLE app_owner")
        conn.execute(
            "CREATE TABLE shop.big AS SELECT g AS id, md5(g::text) AS payload, "
            "md5((g * 7)::text) || md5((g * 13)::text) AS wide, now() - g * interval '1 second' AS at "
            "FROM generate_series(1, %s) AS g",
            [rows],
        )
        conn.execute("COMMENT ON TABLE shop.big IS 'Benchmark table: one million rows'")
        conn.execute("ANALYZE shop.big")


@dataclass
class Target:
    """A running server and what a client needs to reach it."""

    pg: NativePostgres
    server: McpServerProcess

    @property
    def keys(self) -> list[str]:
        return list(self.server.keys.values())


@contextlib.contextmanager
def local_target(
    *, demo_orders: int = 10_000, big_table: bool = False, clients: int = 50, overrides: dict[str, str] | None = None
) -> Iterator[Target]:
    """A private PostgreSQL and server, one API key per client (the per-key limit is a policy, not a bottleneck)."""
    with NativePostgres(demo_orders=demo_orders) as pg:
        if big_table:
            create_big_table(pg)
        keys = {f"client{number:02d}": secrets.token_hex(32) for number in range(clients)}
        overrides = {"MCP_LOG_LEVEL": "WARNING", **(overrides or {})}
        with start_mcp_process(pg, keys=keys, overrides=overrides) as server:
            yield Target(pg=pg, server=server)


def rpc_request(port: int, key: str, tool: str, arguments: dict[str, Any], *, version: str = MODERN) -> bytes:
    """The bytes of one `tools/call` POST, on the given protocol generation."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    headers = [
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        f"MCP-Protocol-Version: {version}",
    ]
    if version == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers += ["Mcp-Method: tools/call", f"Mcp-Name: {tool}"]
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()
    head = "POST /mcp HTTP/1.1\r\n" + "\r\n".join([*headers, f"Content-Length: {len(body)}"]) + "\r\n\r\n"
    return head.encode() + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads Content-Length responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


def check_result(status: int, body: bytes) -> dict[str, Any]:
    """The result of a successful tool call; raises with the server's answer otherwise."""
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    answer = json.loads(body)
    result = answer.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"tool call failed: {body[:500]!r}")
    return result


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB: with workers (`MCP_WORKERS`), the largest worker's
    (each is one server process of its own; the supervisor only waits)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if children:
        return max(peak_rss_mb(int(child)) for child in children)
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


__all__ = [
    "BIG_TABLE_ROWS",
    "LEGACY",
    "MODERN",
    "HttpConnection",
    "Target",
    "check_result",
    "create_big_table",
    "local_target",
    "peak_rss_mb",
    "rpc_request",
]
