"""Fixtures for the client tests: the pinned clients (installed once, from the lock file) and one `python -m pgmcp`
over HTTP, with a key named `default` as in the stack, against the session's native PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from tests.fast.clients.helpers import ClientsMissing, NodeClients, install_clients


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def clients(request: pytest.FixtureRequest) -> NodeClients:
    """Node 22 and the pinned clients; a missing client fails the tests that need it, with the fix."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # let the install's progress reach the terminal
        try:
            return install_clients()
        except ClientsMissing as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def server(pg: NativePostgres) -> Iterator[McpServerProcess]:
    """`python -m pgmcp` on a free loopback port; its only key is named `default`, like the stack's."""
    overrides = {"MCP_POOL_MIN_SIZE": "1", "MCP_POOL_MAX_SIZE": "2"}
    with start_mcp_process(pg, keys={"default": secrets.token_hex(32)}, overrides=overrides) as process:
        yield process


@pytest.fixture
def key(server: McpServerProcess) -> str:
    return server.keys["default"]
