"""Fixtures of the adversarial suite: the reader's function catalogue, database state snapshots, bystanders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from pgmcp.catalog import FunctionCatalog, load_function_catalog
from pgmcp.layers import Layers
from tests.fixtures.native_pg import NativePostgres
from tests.security.harness import McpHarness, harness_settings
from tests.security.state import DatabaseState, capture_state


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _load_catalog(dsn: str) -> FunctionCatalog:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await load_function_catalog(conn)


@pytest.fixture(scope="session")
def reader_catalog(pg: NativePostgres) -> FunctionCatalog:
    """The function catalogue exactly as the MCP server loads it: as mcp_reader, from the live server."""
    return asyncio.run(_load_catalog(pg.dsn("mcp_reader")))


@pytest.fixture
def state_before(superuser: psycopg.Connection) -> DatabaseState:
    """Everything an attack could change, captured through the superuser before the test runs."""
    return capture_state(superuser)


@pytest.fixture
def bystander(pg: NativePostgres) -> Iterator[psycopg.Connection]:
    """Another application's session, open before the attack: it must still be alive afterwards."""
    with psycopg.connect(pg.dsn("app_owner"), autocommit=True) as conn:
        conn.execute("SELECT 1")
        yield conn


class Servers:
    """One in-process MCP server per layer configuration, opened on first use, closed at session end."""

    def __init__(self, pg: NativePostgres) -> None:
        self._pg = pg
        self._open: dict[tuple[str, ...], McpHarness] = {}

    def get(self, active: tuple[str, ...]) -> McpHarness:
        """The shared server with exactly the `active` layers on."""
        key = tuple(sorted(active))
        if key not in self._open:
            self._open[key] = self.private(key)
        return self._open[key]

    def private(self, active: tuple[str, ...]) -> McpHarness:
        """A server of the caller's own, which the caller must close."""
        layers = Layers.only(*active)
        return McpHarness(harness_settings(self._pg, layers), layers)

    def close(self) -> None:
        for harness in self._open.values():
            harness.close()
        self._open.clear()


@pytest.fixture(scope="session")
def servers(pg: NativePostgres) -> Iterator[Servers]:
    opened = Servers(pg)
    try:
        yield opened
    finally:
        opened.close()
