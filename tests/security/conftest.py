"""Fixtures of the adversarial suite: the reader's function policy, database state snapshots, bystanders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp.policy import FunctionPolicy, load_function_policy
from tests.security.harness import Servers
from tests.security.state import DatabaseState, capture_state


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _load_policy(dsn: str) -> FunctionPolicy:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await load_function_policy(conn)


@pytest.fixture(scope="session")
def reader_policy(pg: NativePostgres) -> FunctionPolicy:
    """The function policy exactly as the MCP server loads it: as mcp_reader, from the live server."""
    return asyncio.run(_load_policy(pg.dsn("mcp_reader")))


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


@pytest.fixture(scope="session")
def servers(pg: NativePostgres) -> Iterator[Servers]:
    opened = Servers(pg)
    try:
        yield opened
    finally:
        opened.close()
