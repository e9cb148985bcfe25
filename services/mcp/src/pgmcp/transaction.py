"""One call's transaction, begun and ended by one class: RO, TMO's server-side timeouts and HYG around a pooled
connection.

    async with Transaction(database, settings, layers) as conn:
        ...  # the call's statement

On the way in: a pooled connection, then in one simple-protocol round trip `BEGIN READ ONLY` (a plain `BEGIN`
without RO) and TMO's `SET LOCAL statement_timeout / lock_timeout / idle_in_transaction_session_timeout` (and
`transaction_timeout` on PostgreSQL 17+). BEGIN doubles as the liveness check: a connection the database dropped
(it restarted) fails it at once and is replaced, until the pool timeout.

On the way out: `ROLLBACK` (without RO, `COMMIT` after a success) followed, in the same round trip, by HYG's
session reset (`RESET_SESSION`), then the connection goes back to the pool. After a success under RO that round
trip is deferred (`Database.defer`): the caller's answer is sent first, since nothing a read-only transaction did
can persist either way, and the round trip stays off the caller's latency. After a failure it runs at once,
shielded from cancellation. Database errors leave as psycopg errors; the executor translates them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from types import TracebackType

import anyio
import psycopg
from psycopg.pq import TransactionStatus

from pgmcp.config import Settings
from pgmcp.db import Connection, Database
from pgmcp.layers import Layers

logger = logging.getLogger(__name__)

WATCHDOG_GRACE_S = 1.0
"""How long after the statement timeout the watchdog sends its own cancel request (`pgmcp.execute`)."""
WATCHDOG_ABANDON_S = 2.0
"""How long after that cancel the call gives up on the connection (it is closed, the pool replaces it)."""
END_TIMEOUT_S = 2.0
"""Bound on ending a transaction and resetting its session; past it the connection is closed and replaced."""

RESET_SESSION = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES"
)
"""HYG: what DISCARD ALL does, statement by statement (PostgreSQL documents this equivalence), so it can follow
the ROLLBACK in the same round trip (DISCARD ALL itself refuses to run in a multi-statement query). Drops cursors,
prepared statements, LISTENs, advisory locks, temporary objects and every session-level SET (back to the role's
own defaults, e.g. default_transaction_read_only)."""

_ENDABLE = (TransactionStatus.INTRANS, TransactionStatus.INERROR, TransactionStatus.IDLE)


class Transaction:
    """BEGIN [READ ONLY] and the timeouts on entry; ROLLBACK (or COMMIT) and the reset on exit. One per call."""

    def __init__(
        self, database: Database, settings: Settings, layers: Layers, search_path: Sequence[str] | None = None
    ) -> None:
        self._database = database
        self._settings = settings
        self._layers = layers
        self._search_path = tuple(search_path) if search_path is not None else None
        self._conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        deadline = time.monotonic() + self._settings.pool_timeout_ms / 1000
        while True:
            conn = await self._database.checkout()
            try:
                await conn.execute(self.begin_statement(), prepare=False)
            except psycopg.Error as exc:
                await self._end(conn, "ROLLBACK")
                if not (conn.closed or conn.broken) or time.monotonic() >= deadline:
                    raise
                logger.info("replacing a pooled connection the database dropped: %s", " ".join(str(exc).split()))
                continue
            except BaseException:
                await self._end(conn, "ROLLBACK")
                raise
            self._conn = conn
            return conn

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:  # pragma: no cover - __aenter__ either set it or raised
            return
        if error is None and self._layers.ro:
            self._database.defer(self._end(conn, "ROLLBACK"))
            return
        with anyio.CancelScope(shield=True):
            await self._end(conn, "COMMIT" if error is None else "ROLLBACK")

    def begin_statement(self) -> str:
        """BEGIN plus the TMO settings in one simple-protocol round trip; our own text, numbers only."""
        parts = ["BEGIN READ ONLY" if self._layers.ro else "BEGIN"]
        if self._layers.tmo:
            settings = self._settings
            timeout = settings.statement_timeout_ms
            parts += [
                f"SET LOCAL statement_timeout = {int(timeout)}",
                f"SET LOCAL lock_timeout = {int(settings.lock_timeout_ms)}",
                f"SET LOCAL idle_in_transaction_session_timeout = {int(timeout + 1000 * WATCHDOG_GRACE_S)}",
            ]
            server = self._database.server
            if server is not None and server.version_num >= 170000:
                total = timeout + int(1000 * (WATCHDOG_GRACE_S + WATCHDOG_ABANDON_S))
                parts.append(f"SET LOCAL transaction_timeout = {int(total)}")
        if self._search_path is not None:
            # the key's schemas (names from the operator's key file, quoted); pg_catalog stays first, implicitly
            parts.append(
                f"SET LOCAL search_path = {', '.join(map(quote_identifier, self._search_path)) or 'pg_catalog'}"
            )
        return "; ".join(parts)

    async def _end(self, conn: Connection, ending: str) -> None:
        """End the transaction with `ending` (ROLLBACK after an error whatever was asked) and, with HYG, reset the
        session, in one round trip; then give the connection back. One that cannot be ended in time is closed."""
        status = conn.info.transaction_status
        if status in _ENDABLE:
            parts = (
                []
                if status == TransactionStatus.IDLE
                else ["ROLLBACK" if status == TransactionStatus.INERROR else ending]
            )
            if self._layers.hyg:
                parts.append(RESET_SESSION)
            if parts:
                try:
                    async with asyncio.timeout(END_TIMEOUT_S):
                        await conn.execute("; ".join(parts), prepare=False)
                except (psycopg.Error, TimeoutError) as exc:
                    reason = exc if isinstance(exc, psycopg.Error) else f"no answer within {END_TIMEOUT_S} s"
                    logger.warning("unable to end and reset a pooled connection (%s): discarding it", reason)
                    await conn.close()
        await self._database.release(conn)


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


__all__ = [
    "quote_identifier",
    "END_TIMEOUT_S",
    "RESET_SESSION",
    "WATCHDOG_ABANDON_S",
    "WATCHDOG_GRACE_S",
    "Transaction",
]
