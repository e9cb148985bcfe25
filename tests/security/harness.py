"""The real MCP server, in process, driven from synchronous tests.

`McpHarness` builds `pgmcp.app.create_mcp(settings, layers=...)`, opens an `mcp.Client` on it inside a
private event loop thread, and exposes `call(tool, **arguments)`. One harness per layer configuration is
kept for the whole session (opening one costs a role audit, a catalogue load and a pool), so hundreds of
attack runs cost milliseconds each.

Which database role the server logs in as follows the ROLE layer: with ROLE on it is `mcp_reader`, the
least-privilege role the stack creates; with ROLE off it is the superuser, so that every other layer is
shown to stop its class of attack on its own even when the database would let anything through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from mcp import Client
from mcp.types import CallToolResult

from devtools.native_pg import NativePostgres
from pgmcp.app import create_mcp
from pgmcp.config import Settings
from pgmcp.layers import Layers

T = TypeVar("T")

SESSION_PROBE = (
    "SELECT current_user::text AS who, session_user::text AS session_who, "
    "current_setting('search_path') AS search_path, "
    "current_setting('default_transaction_read_only') AS read_only_default, "
    "current_setting('statement_timeout') AS statement_timeout, "
    "(SELECT count(*) FROM pg_prepared_statements) AS prepared, "
    "(SELECT count(*) FROM pg_cursors) AS cursors, "
    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks"
)

OPEN_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 60.0
STATEMENT_TIMEOUT_MS = 1500


def harness_settings(pg: NativePostgres, layers: Layers, **overrides: Any) -> Settings:
    """Settings for a test server: small pool, short timeouts, EXPLAIN ANALYZE allowed (the worst case)."""
    role = "mcp_reader" if layers.role else "postgres"
    base = Settings(
        database_host=pg.host,
        database_port=pg.port,
        database_name=pg.database,
        database_user=role,
        database_password=pg.passwords[role],
        database_sslmode="disable",
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        lock_timeout_ms=500,
        pool_min_size=1,
        pool_max_size=1,
        pool_timeout_ms=1000,
        allow_explain_analyze=True,
    )
    return replace(base, **overrides) if overrides else base


@dataclass
class McpHarness:
    """One in-process server and client; `call()` from any thread, `close()` once."""

    settings: Settings
    layers: Layers
    _loop: asyncio.AbstractEventLoop = field(init=False, repr=False)
    _thread: threading.Thread = field(init=False, repr=False)
    _client: Client | None = field(init=False, default=None, repr=False)
    _stop: asyncio.Event | None = field(init=False, default=None, repr=False)
    _served: Future[None] | None = field(init=False, default=None, repr=False)
    fresh_session: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-harness", daemon=True)
        self._thread.start()
        ready: Future[None] = Future()
        self._served = asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
        try:
            ready.result(timeout=OPEN_TIMEOUT_S)
            self.fresh_session = self.session_state()
        except BaseException:
            self.close()
            raise

    async def _serve(self, ready: Future[None]) -> None:
        self._stop = asyncio.Event()
        server = create_mcp(self.settings, layers=self.layers)
        try:
            async with Client(server, mode="legacy") as client:
                self._client = client
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(_first_leaf(exc))
                return  # reported through `ready`
            raise
        finally:
            self._client = None

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run a coroutine on the harness loop (where the client lives) and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the client lives on, for callers that schedule several calls at once."""
        return self._loop

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the harness is closed or failed to open")
        return self._client

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        return self.run(self.client.call_tool(tool, arguments))

    def session_state(self) -> Any:
        """What a pooled session carries from call to call (role, settings, prepared statements, cursors,
        advisory locks), read through the query tool itself: with a pool of one, the session under test."""
        result = self.call("query", sql=SESSION_PROBE)
        if result.is_error or result.structured_content is None:
            raise AssertionError(f"the session probe failed: {text_of(result)}")
        return result.structured_content["rows"]

    def close(self) -> None:
        if self._stop is not None and self._served is not None and not self._served.done():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._served.result(timeout=OPEN_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=OPEN_TIMEOUT_S)
        self._loop.close()


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups, as anyio task groups raise them."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def text_of(result: CallToolResult) -> str:
    """All text content of a tool result, joined."""
    return "\n".join(getattr(item, "text", "") for item in result.content)


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
