"""Fixtures for the MCP server's fast tier: in-process clients (`mcp.Client(server)`) and one `python -m pgmcp`
subprocess per session, both against the session's native PostgreSQL (`pg`)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from pgmcp.app import create_mcp
from pgmcp.config import Settings
from pgmcp.keys import KeyEntry
from pgmcp.layers import ALL_LAYERS, Layers
from tests.fast.mcp.helpers import ALICE, BOB, HTTP_CONCURRENCY, HTTP_MAX_REQUEST_BYTES, Connect


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def reader_settings(pg: NativePostgres) -> Settings:
    """Settings for the reader role of the session server; small pool, so parallel servers stay under its limit."""
    return Settings(
        database_host=pg.host,
        database_port=pg.port,
        database_name=pg.database,
        database_user="mcp_reader",
        database_password=pg.passwords["mcp_reader"],
        api_keys=(KeyEntry.from_secret(ALICE, secrets.token_hex(32)), KeyEntry.from_secret(BOB, secrets.token_hex(32))),
        pool_min_size=1,
        pool_max_size=4,
        startup_timeout_ms=10_000,
    )


@pytest.fixture
def connect(reader_settings: Settings) -> Connect:
    """`async with connect(layers=..., mode=..., **settings_overrides) as client:` an in-process client."""

    @asynccontextmanager
    async def _connect(
        settings: Settings | None = None, *, layers: Layers = ALL_LAYERS, mode: str = "auto", **overrides: Any
    ) -> AsyncIterator[Client]:
        effective = dataclasses.replace(settings or reader_settings, **overrides)
        server = create_mcp(effective, layers=layers)
        async with Client(server, mode=mode, cache=None) as client:
            yield client

    return _connect


@pytest.fixture(scope="session")
def http_server(pg: NativePostgres) -> Iterator[McpServerProcess]:
    """`python -m pgmcp` bound to 0.0.0.0 (as in the container) on a free port; reached on 127.0.0.1 only."""
    server = start_mcp_process(
        pg,
        keys={ALICE: secrets.token_hex(32), BOB: secrets.token_hex(32)},
        overrides={
            "MCP_BIND_HOST": "0.0.0.0",
            "MCP_MAX_CONCURRENCY_PER_KEY": str(HTTP_CONCURRENCY),
            "MCP_MAX_REQUEST_BYTES": str(HTTP_MAX_REQUEST_BYTES),
            "MCP_POOL_MIN_SIZE": "1",
            "MCP_POOL_MAX_SIZE": "4",
        },
    )
    try:
        yield server
    finally:
        server.cleanup()
