"""Run one statement the safe way: the RO, ONE, TMO and CAP layers around a pooled connection.

- RO: the call runs in `BEGIN READ ONLY` and is always rolled back (`pgmcp.transaction` begins and ends it).
- ONE: the statement goes over the extended protocol (psycopg's `stream()` always uses it), so PostgreSQL
  itself refuses a second statement ("cannot insert multiple commands into a prepared statement").
- TMO: `SET LOCAL statement_timeout / lock_timeout / idle_in_transaction_session_timeout` (and
  `transaction_timeout` on PostgreSQL 17+) in the same round trip as BEGIN (`pgmcp.transaction`); here, a
  watchdog sends a cancel request when the server-side timeout has not fired a second after it should have, and
  abandons the connection if even that does not end the query.
- CAP: rows are streamed in chunks and counting stops at the row or byte limit; the query is then cancelled.
  The SQL text is never rewritten.

With a layer switched off (tests only, `pgmcp.layers`), the corresponding mechanism is simply absent: no
read-only transaction (a plain BEGIN ... COMMIT), the simple query protocol, no timeouts, or no limits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import psycopg
from psycopg import AsyncRawCursor
from psycopg.generators import fetch
from psycopg.pq import ExecStatus
from psycopg.rows import dict_row

from pgmcp import transaction
from pgmcp.config import Settings
from pgmcp.db import JSON_TYPE_OIDS, Connection, Database
from pgmcp.errors import DatabaseFailed, DatabaseUnavailable, QueryTimeout
from pgmcp.layers import Layers
from pgmcp.results import convert_row
from pgmcp.transaction import Transaction
from pgmcp.types import Json, ParamValue

logger = logging.getLogger(__name__)

T = TypeVar("T")

CANCEL_REQUEST_TIMEOUT_S = 2.0
MAX_CHUNK_ROWS = 500
"""Rows per chunk without the CAP layer (tests only)."""
CHUNK_ROWS = 16
"""Rows libpq hands over at a time while streaming. Small, because rows can be wide (a chunk is held whole in
memory, per concurrent call) and because the caps stop the stream early; larger chunks save nothing measurable."""
TYPE_CACHE_LIMIT = 10_000

_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "53400", "08000", "08003", "08006", "08001"})
_TIMEOUT_SQLSTATES = frozenset({"57014", "25P03", "25P04"})


@dataclass(frozen=True, slots=True)
class Limits:
    """What one call may return; every field None when the CAP layer is off."""

    max_rows: int | None
    max_bytes: int | None
    max_cell_bytes: int | None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


@dataclass(slots=True)
class Outcome:
    """What a statement returned, after the limits."""

    columns: list[Column] = field(default_factory=list)
    rows: list[list[Json]] = field(default_factory=list)
    truncated_reason: str | None = None  # "max_rows" or "max_bytes"
    truncated_cells: int = 0
    bytes: int = 0
    elapsed_ms: float = 0.0

    @property
    def truncated(self) -> bool:
        return self.truncated_reason is not None or self.truncated_cells > 0


class Executor:
    """Runs statements for the tools. One instance per server; safe for concurrent calls."""

    def __init__(
        self, settings: Settings, layers: Layers, database: Database, on_watchdog: Callable[[], None] | None = None
    ) -> None:
        self._settings = settings
        self._layers = layers
        self._database = database
        self._on_watchdog = on_watchdog
        self._type_names: dict[tuple[int, int], str] = {}
        self.watchdog_cancels = 0

    def limits(self, max_rows: int | None = None) -> Limits:
        """The operator's limits, with the model's smaller `max_rows` when it asked for one."""
        if not self._layers.cap:
            return Limits(None, None, None)
        settings = self._settings
        rows = settings.max_rows if max_rows is None else min(max_rows, settings.max_rows)
        return Limits(rows, settings.max_bytes, settings.max_cell_bytes)

    async def run(
        self,
        statement: str,
        params: Sequence[ParamValue] | None,
        limits: Limits,
        search_path: Sequence[str] | None = None,
    ) -> Outcome:
        """Run a statement (already validated by the guard) and return its capped result. `search_path`: the
        schemas unqualified names resolve in for this call (a key limited to some schemas), else the role's."""

        async def work(conn: Connection) -> tuple[Outcome, list[tuple[int, int]]]:
            cursor = AsyncRawCursor(conn) if self._layers.one else _SimpleProtocolCursor(conn)
            started = time.perf_counter()
            fetched = await self._fetch(cursor, statement, params, limits)
            fetched[0].elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            return fetched

        outcome, pending = await self._in_transaction(work, search_path)
        if pending:
            await self._name_types(outcome, pending)
        return outcome

    async def fetch_all(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one of the server's own catalogue queries (placeholders `$1`...) under RO and TMO; all rows."""

        async def work(conn: Connection) -> list[dict[str, Any]]:
            cursor = AsyncRawCursor(conn, row_factory=dict_row)
            await cursor.execute(query, list(params))
            return await cursor.fetchall()

        return await self._in_transaction(work)

    # -- transaction and timeouts ---------------------------------------------------------------------------

    async def _in_transaction(
        self, work: Callable[[Connection], Awaitable[T]], search_path: Sequence[str] | None = None
    ) -> T:
        """Run `work` in one call's transaction (`pgmcp.transaction`: RO, TMO, HYG) under the watchdog; translate
        database errors into tool errors."""
        try:
            async with Transaction(self._database, self._settings, self._layers, search_path) as conn:
                return await self.watched(conn, work(conn))
        except psycopg.Error as exc:
            raise translate(exc, self._settings) from exc

    async def watched(self, conn: Connection, work: Awaitable[T]) -> T:
        """TMO's second line: cancel the query if the server-side timeout did not, then abandon the connection.

        Two timers on the running loop, not a task per call: at the statement timeout plus the grace a cancel
        request goes out (in a task of its own); at the abandon mark `asyncio.timeout` cancels `work`, the
        connection is closed and the call fails with a timeout."""
        if not self._layers.tmo:
            return await work
        timeout_s = self._settings.statement_timeout_ms / 1000
        cancel_at = timeout_s + transaction.WATCHDOG_GRACE_S
        loop = asyncio.get_running_loop()
        requests: list[asyncio.Task[None]] = []
        timer = loop.call_later(cancel_at, lambda: requests.append(loop.create_task(self._cancel_request(conn))))
        try:
            async with asyncio.timeout(cancel_at + transaction.WATCHDOG_ABANDON_S) as deadline:
                return await work
        except TimeoutError:
            if not deadline.expired():
                raise
            logger.error("statement ignored the cancel request: abandoning its connection")
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise QueryTimeout(_timeout_message(self._settings, abandoned=True), sqlstate="57014") from None
        finally:
            timer.cancel()
            if requests:
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(*requests, return_exceptions=True)

    async def _cancel_request(self, conn: Connection) -> None:
        self.watchdog_cancels += 1
        if self._on_watchdog is not None:
            self._on_watchdog()
        logger.warning(
            "statement still running %.1f s after its %.0f ms statement_timeout: sending a cancel request",
            transaction.WATCHDOG_GRACE_S,
            self._settings.statement_timeout_ms,
        )
        try:
            await conn.cancel_safe(timeout=CANCEL_REQUEST_TIMEOUT_S)
        except psycopg.Error as exc:
            logger.warning("cancel request failed: %s", exc)

    # -- fetching with the caps ------------------------------------------------------------------------------

    async def _fetch(
        self, cursor: AsyncRawCursor[Any], statement: str, params: Sequence[ParamValue] | None, limits: Limits
    ) -> tuple[Outcome, list[tuple[int, int]]]:
        outcome = Outcome()
        pending: list[tuple[int, int]] = []
        json_columns: list[bool] | None = None
        max_rows, max_bytes, cell_limit = limits.max_rows, limits.max_bytes, limits.max_cell_bytes
        async with aclosing(self._rows(cursor, statement, params, limits)) as rows:
            async for row in rows:
                if json_columns is None:
                    json_columns = self._describe(cursor, outcome, pending)
                if max_rows is not None and len(outcome.rows) >= max_rows:
                    outcome.truncated_reason = "max_rows"
                    break
                values, size, cut = convert_row(row, json_columns, cell_limit)
                if max_bytes is not None and outcome.bytes + size > max_bytes:
                    outcome.truncated_reason = "max_bytes"
                    break
                outcome.rows.append(values)
                outcome.bytes += size
                outcome.truncated_cells += cut
        if json_columns is None:
            self._describe(cursor, outcome, pending)
        return outcome, pending

    def _rows(
        self, cursor: AsyncRawCursor[Any], statement: str, params: Sequence[ParamValue] | None, limits: Limits
    ) -> AsyncGenerator[Sequence[Any], None]:
        """Stream the rows (libpq's chunked mode: a few rows at a time, never the whole result): with ONE over the
        extended protocol, without it over the simple protocol (`_SimpleProtocolCursor`). Closing the generator
        early cancels the query."""
        chunk = MAX_CHUNK_ROWS if limits.max_rows is None else max(1, min(limits.max_rows + 1, CHUNK_ROWS))
        stream = cursor.stream(statement, list(params) if params else None, size=chunk)
        return cast(AsyncGenerator[Sequence[Any], None], stream)

    def _describe(self, cursor: AsyncRawCursor[Any], outcome: Outcome, pending: list[tuple[int, int]]) -> list[bool]:
        """Column names, and type names as PostgreSQL spells them (format_type), from a cache; types not yet
        cached are named after the call (`pending`, in column order)."""
        description = cursor.description or []
        result = cursor.pgresult
        for index, column in enumerate(description):
            key = (column.type_code, result.fmod(index) if result is not None else -1)
            known = self._type_names.get(key)
            if known is None:
                pending.append(key)
            outcome.columns.append(Column(column.name, known or ""))
        return [column.type_code in JSON_TYPE_OIDS for column in description]

    async def _name_types(self, outcome: Outcome, pending: list[tuple[int, int]]) -> None:
        """Name the columns left unnamed by `_describe` (domains, enums, extension types) with format_type().

        `pending` lists their (type oid, typmod) in column order; names are cached for later calls.
        """
        unknown = sorted(set(pending))
        try:
            rows = await self.fetch_all(
                "SELECT o AS oid, m AS typmod, format_type(o, nullif(m, -1)) AS name "
                "FROM unnest($1::oid[], $2::int[]) AS t(o, m)",
                [[oid for oid, _ in unknown], [mod for _, mod in unknown]],
            )
        except (DatabaseUnavailable, DatabaseFailed, QueryTimeout) as exc:
            logger.warning("unable to name result column types: %s", exc)
            rows = []
        if len(self._type_names) > TYPE_CACHE_LIMIT:
            self._type_names.clear()
        for row in rows:
            self._type_names[(int(row["oid"]), int(row["typmod"]))] = str(row["name"])
        keys = iter(pending)
        for index, column in enumerate(outcome.columns):
            if not column.type:
                key = next(keys)
                outcome.columns[index] = Column(column.name, self._type_names.get(key, f"oid {key[0]}"))


class _SimpleProtocolCursor(AsyncRawCursor[Any]):
    """What runs without the ONE layer (tests only): the text goes over the simple query protocol, as a naive
    server would send it, so a second statement reaches the database and runs. psycopg's stream() always asks for
    the extended protocol; this cursor drops that request (a statement without parameters then goes as a simple
    Query message, still in chunked mode, so CAP streams here too). At the end of the first result, psycopg
    drains the results of the statements after it in silence; this cursor raises the first error among them, so
    that the database's own answer to a stacked statement (42501, 25006, ...) is what the call reports. Relies on
    psycopg's `_execute_send` and `_stream_fetchone_gen` hooks, pinned with psycopg 3.3
    (tests/fast/mcp/test_safety.py proves these behaviours)."""

    def _execute_send(self, query: Any, *, force_extended: bool = False, binary: bool | None = None) -> None:
        super()._execute_send(query, force_extended=False, binary=binary)

    def _stream_fetchone_gen(self, first: bool) -> Any:
        res = yield from fetch(self._pgconn)
        if res is None:
            return None
        if res.status in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK):
            error = None
            status = res.status
            while res is not None:
                res = yield from fetch(self._pgconn)
                if error is None and res is not None and res.status == ExecStatus.FATAL_ERROR:
                    error = res
            if error is not None:
                return self._raise_for_result(error)
            if status != ExecStatus.TUPLES_OK:
                raise psycopg.ProgrammingError("the operation in stream() didn't produce a result")
            return None
        return self._stream_row(first, res)

    def _stream_row(self, first: bool, res: Any) -> Any:
        """psycopg's own handling of a row chunk (or an error) that `fetch` already returned."""
        if res.status in (ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK):
            self.pgresult = res
            self._tx.set_pgresult(res, set_loaders=first)
            if first:
                self._make_row = self._make_row_maker()
            return res
        return self._raise_for_result(res)


def _timeout_message(settings: Settings, *, abandoned: bool = False) -> str:
    how = "did not stop when cancelled, so its connection was closed" if abandoned else "was cancelled"
    return (
        f"query timed out: it ran longer than the {settings.statement_timeout_ms} ms statement timeout and {how} "
        "(SQLSTATE 57014)\nhint: narrow it with WHERE conditions on indexed columns, aggregate instead of listing, "
        "or check its plan with the explain tool"
    )


def translate(error: psycopg.Error, settings: Settings) -> DatabaseFailed | DatabaseUnavailable | QueryTimeout:
    """A psycopg error as the tool error the model should see: what failed, the SQLSTATE, what to do."""
    sqlstate = error.sqlstate
    diag = error.diag
    primary = diag.message_primary or " ".join(str(error).split())
    if sqlstate == "55P03":
        return QueryTimeout(
            f"query waited longer than the {settings.lock_timeout_ms} ms lock timeout: {primary} (SQLSTATE 55P03)\n"
            "hint: another session holds a conflicting lock; retry later",
            sqlstate=sqlstate,
        )
    if sqlstate in _TIMEOUT_SQLSTATES:
        return QueryTimeout(_timeout_message(settings), sqlstate=sqlstate)
    if sqlstate in _TRANSIENT_SQLSTATES or (sqlstate is None and isinstance(error, psycopg.OperationalError)):
        return DatabaseUnavailable(
            f"database unavailable: {primary}{f' (SQLSTATE {sqlstate})' if sqlstate else ''}. The database is "
            "restarting or the connection was lost; this is transient: retry in about 5 seconds",
            sqlstate=sqlstate,
        )
    lines = [f"query failed: {primary}{f' (SQLSTATE {sqlstate})' if sqlstate else ''}"]
    if diag.message_detail:
        lines.append(f"detail: {diag.message_detail}")
    if diag.statement_position:
        lines.append(f"at character {diag.statement_position} of the statement")
    if diag.message_hint:
        lines.append(f"hint: {diag.message_hint}")
    ours = _HINTS.get(sqlstate or "", _HINTS.get((sqlstate or "")[:2], ""))
    if ours:
        lines.append(f"hint: {ours}")
    return DatabaseFailed("\n".join(lines), sqlstate=sqlstate)


_HINTS = {
    "42P01": "use list_tables or search_schema to find the exact table name, and qualify it with its schema",
    "42703": "use describe_table to see the table's columns",
    "42883": "check the function name and argument types; cast arguments explicitly (e.g. $1::int)",
    "42501": "the server's database role may not read this object: use only what list_tables shows",
    "25006": "only read queries are allowed: this server never changes data",
    "42601": "fix the SQL syntax near the position shown",
    "42P02": "pass a value for every $n placeholder in `params`",
    "22": "check the values and casts (a parameter or a literal does not fit its type)",
    "53": "the database is short of resources for this query: make it cheaper (fewer rows, no huge sorts)",
    "54": "the statement is too complex or too large: simplify it",
}

__all__ = ["Column", "Executor", "Limits", "Outcome", "translate"]
