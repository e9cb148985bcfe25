"""The connection pool and what happens around it: startup checks (ROLE), and turning "no connection" into a
clear, transient tool error. A call's transaction and the session reset (RO, TMO, HYG) are `pgmcp.transaction`'s.

Startup opens one probe connection (retrying transient failures until `MCP_STARTUP_TIMEOUT`, stopping at
once on what no retry cures: `pgmcp.failures` tells them apart), audits the role, checks the pool against the
role's and the database's CONNECTION LIMIT and the server's slots, and reads the function policy the guard
needs, which `open()` returns (`pgmcp.service.Service.open` hands it to the guard).
Only then is the pool opened. At run time a call waits at most
`MCP_POOL_TIMEOUT` for a connection; when none comes, a quick diagnosis says why (down, restarting, out
of connections, or simply busy) and the pool recovers by itself once the database answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import psycopg
from psycopg.adapt import AdaptersMap
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pgmcp import role_audit
from pgmcp.config import Settings
from pgmcp.errors import DatabaseUnavailable, DatabaseUnreachable, StartupRefused
from pgmcp.failures import diagnose
from pgmcp.layers import Layers
from pgmcp.placement import CHECK_INTERVAL_S, Placement, Server, sample
from pgmcp.policy import FunctionPolicy, load_function_policy

logger = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[Any]

TEXT_TYPES = (
    "numeric",
    "money",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "inet",
    "cidr",
    "bytea",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
)
"""Types loaded as PostgreSQL's own text: exact, compact, and JSON-safe without conversion."""

JSON_TYPE_OIDS = frozenset({114, 3802})

# Retry policy of the startup probe (psycopg_pool's AttemptWithBackoff, in our own words).
STARTUP_INITIAL_DELAY_S = 0.5
STARTUP_MAX_DELAY_S = 5.0
STARTUP_BACKOFF = 2.0
# How long the pool keeps retrying one lost connection before it gives up and grows again on demand;
# short, so that recovery after a long outage does not wait for a long backoff delay.
POOL_RECONNECT_TIMEOUT_S = 10.0
DIAGNOSIS_TTL_S = 1.0
DIAGNOSIS_CONNECT_TIMEOUT_S = 1
# With standbys: how often a worker asks whether reads on the primary (or off a lagging standby) may go back
PROBE_INTERVAL_S = 5.0


def text_adapters() -> AdaptersMap:
    """psycopg's adapters, with the `TEXT_TYPES` (and their arrays) loaded as text."""
    adapters = AdaptersMap(psycopg.adapters)
    for name in TEXT_TYPES:
        adapters.register_loader(name, TextLoader)
    return adapters


ADAPTERS = text_adapters()


def describe_connect_error(error: BaseException) -> str:
    """The interesting line of a libpq connection error, without the `connection failed:` noise."""
    text = " ".join(str(error).split())
    _, _, tail = text.rpartition(" failed: ")
    return (tail or text).replace("FATAL: ", "").strip()


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Facts about the database learnt at startup."""

    version_num: int
    version: str
    role_connection_limit: int  # -1: none
    database_connection_limit: int  # -1: none
    server_connection_slots: (
        int  # max_connections less the slots reserved for superusers and pg_use_reserved_connections
    )


class Database:
    """The pool of connections as the reader role, plus what startup learnt about the server."""

    def __init__(
        self,
        settings: Settings,
        layers: Layers,
        *,
        pool_sizes: tuple[int, int] | None = None,
        on_server: Callable[[Server], None] | None = None,
    ) -> None:
        """`pool_sizes` (min, max): this process's share of MCP_POOL_MIN_SIZE and MCP_POOL_MAX_SIZE when several
        workers share them (`pgmcp.workers`); the checks at startup stay on the totals. `on_server` hears each
        sample of where reads go (`pgmcp.placement`), for the metrics."""
        self._settings = settings
        self.placement = Placement(settings.database_conninfo(), settings.max_replica_lag_ms)
        self._on_server = on_server
        self._layers = layers
        self._pool_sizes = pool_sizes or (settings.pool_min_size, settings.pool_max_size)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._diagnosis: tuple[float, str] | None = None
        self._diagnosis_lock = anyio.Lock()
        self._deferred_tasks: set[asyncio.Task[None]] = set()
        self.server: ServerInfo | None = None
        self._watch_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def open(self) -> FunctionPolicy:
        """Probe, audit, read the function policy, open the pool; return the policy (as read: the guard vets it).
        Raises `DatabaseUnreachable` or `StartupRefused`."""
        settings = self._settings
        conn = await self._probe()
        try:
            self.server = await self._server_info(conn)
            problems = await self._startup_problems(conn, self.server)
            if problems:
                raise StartupRefused(problems)
            policy = await load_function_policy(conn)
            self._note(await sample(conn))
        finally:
            await conn.close()
        placement = self.placement
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            kwargs=lambda: {**placement.conninfo(), **_CONNECTION_OPTIONS},
            min_size=self._pool_sizes[0],
            max_size=self._pool_sizes[1],
            open=False,
            name="pgmcp",
            timeout=settings.pool_timeout_ms / 1000,
            reconnect_timeout=POOL_RECONNECT_TIMEOUT_S,
            num_workers=2,
        )
        await pool.open(wait=False)
        self._pool = pool
        if placement.routing:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch(pool))
        logger.info(
            "database ready: %s, PostgreSQL %s, pool %s-%s connections, layers %s",
            settings.database_target(),
            self.server.version,
            settings.pool_min_size,
            settings.pool_max_size,
            ",".join(self._layers.active()),
        )
        return policy

    async def close(self) -> None:
        watch, self._watch_task = self._watch_task, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if self._deferred_tasks:
            await asyncio.gather(*self._deferred_tasks, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=5.0)

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    # -- use ---------------------------------------------------------------------------------------------------

    async def checkout(self) -> Connection:
        """A pooled connection, or `DatabaseUnavailable` (transient, with a retry hint) within the pool timeout.

        The connection is not checked with a round trip: the caller's first statement is the check, and a
        connection found broken that way is given back (`release`) and another one taken.
        """
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable(
                "the server is starting or stopping and has no database connections: retry in a few seconds"
            )
        try:
            return await pool.getconn()
        except PoolTimeout:
            raise DatabaseUnavailable(await self._diagnose_unavailable()) from None

    async def release(self, conn: Connection) -> None:
        """Give a connection back; the pool discards it when closed, broken or mid-query (`checkout`'s pair).
        A broken one tells `placement` which server dropped it (`Placement.dropped`)."""
        pool = self._pool
        if pool is None:
            await conn.close()
            return
        drain = conn.broken and self.placement.dropped(_host(conn))
        await pool.putconn(conn)
        if drain:
            await pool.drain()

    def defer(self, work: Awaitable[None]) -> None:
        """Finish `work` after the current call has answered (its ROLLBACK, `pgmcp.transaction`); `close()` waits
        for it."""
        task = asyncio.get_running_loop().create_task(self._deferred(work))
        self._deferred_tasks.add(task)
        task.add_done_callback(self._deferred_tasks.discard)

    async def _deferred(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            logger.exception("deferred database work failed")

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's counters (`pool_size`, `pool_available`, `requests_waiting`, ...); empty when closed."""
        return dict(self._pool.get_stats()) if self._pool is not None else {}

    async def ping(self, timeout_s: float) -> str | None:
        """None when a pooled connection answers within `timeout_s`, else why not (for /readyz). The answer is
        where that connection reads (`pgmcp.placement`), which `placement.current` then holds.

        Connections the database dropped (a restart) are replaced on the way, as for tool calls."""
        if self._pool is None:
            return "the database pool is not open"
        deadline = time.monotonic() + timeout_s
        try:
            with anyio.fail_after(timeout_s):
                while True:
                    conn = await self.checkout()
                    try:
                        server = await sample(conn)
                    except psycopg.Error as exc:
                        if not (conn.closed or conn.broken) or time.monotonic() >= deadline:
                            return f"the database failed a query: {describe_connect_error(exc)}"
                    else:
                        if self._note(server) and self._pool is not None:
                            await self._pool.drain()
                        return None
                    finally:
                        await self.release(conn)
        except DatabaseUnavailable as exc:
            return exc.message
        except TimeoutError:
            return f"the database did not answer SELECT 1 within {timeout_s:.1f} s"

    # -- internals ---------------------------------------------------------------------------------------------

    def _note(self, server: Server) -> bool:
        """Record where a connection reads; True when the pool must be drained (`Placement.observe`)."""
        drain = self.placement.observe(server)
        if self._on_server is not None:
            self._on_server(server)
        return drain

    async def _watch(self, pool: AsyncConnectionPool[Connection]) -> None:
        """With a host list or standbys (`Placement.routing`): sample a pooled connection every
        `CHECK_INTERVAL_S`, keep off a standby that lags too much, and move reads back to standbys when one answers
        again (at most every `PROBE_INTERVAL_S`). A busy pool (no idle connection within the interval) skips a turn."""
        last_probe = 0.0
        while True:
            await anyio.sleep(CHECK_INTERVAL_S)
            try:
                try:
                    conn = await pool.getconn(timeout=CHECK_INTERVAL_S)
                except PoolTimeout:
                    continue
                try:
                    drain = self._note(await sample(conn))
                except psycopg.Error:
                    continue  # a broken connection: the pool replaces it, the next turn samples another
                finally:
                    await self.release(conn)
                if not drain and self.placement.wants_probe() and time.monotonic() - last_probe >= PROBE_INTERVAL_S:
                    last_probe = time.monotonic()
                    drain = await self.placement.probe(_CONNECTION_OPTIONS)
                if drain:
                    await pool.drain()
            except Exception:
                logger.exception("checking where reads go failed; trying again in %.0f s", CHECK_INTERVAL_S)

    async def _probe(self) -> Connection:
        """One connection for the startup checks, retrying transient failures until the startup deadline."""
        settings = self._settings
        deadline = time.monotonic() + settings.startup_timeout_ms / 1000
        delay = STARTUP_INITIAL_DELAY_S
        attempts = 0
        while True:
            attempts += 1
            try:
                return await psycopg.AsyncConnection.connect(**settings.database_conninfo(), **_CONNECTION_OPTIONS)
            except psycopg.OperationalError as exc:
                reason = describe_connect_error(exc)
                failure = diagnose(str(exc), settings.failure_target())
                hints = "\n".join(f"hint: {hint}" for hint in failure.hints)
                if failure.permanent:
                    raise DatabaseUnreachable(
                        f"unable to connect to {settings.database_target()}: {failure.reason} ({reason})\n{hints}"
                    ) from None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DatabaseUnreachable(
                        f"unable to connect to {settings.database_target()} after {attempts} attempts in "
                        f"{settings.startup_timeout_ms / 1000:.0f} s: {failure.reason} ({reason})\n{hints}\n"
                        "hint: raise MCP_STARTUP_TIMEOUT if the database needs longer to start"
                    ) from None
                logger.warning("database not reachable yet (%s): retrying in %.1f s", reason, min(delay, remaining))
                await anyio.sleep(min(delay, remaining))
                delay = min(delay * STARTUP_BACKOFF, STARTUP_MAX_DELAY_S)

    async def _server_info(self, conn: Connection) -> ServerInfo:
        cur = await conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'), "
            "(SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user), "
            "(SELECT datconnlimit FROM pg_database WHERE datname = current_database()), "
            "current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int "
            "- current_setting('reserved_connections')::int",
            prepare=False,
        )
        row = await cur.fetchone()
        if row is None:  # pragma: no cover - a SELECT without FROM always returns one row
            raise StartupRefused(["unable to read the server version"])
        return ServerInfo(
            version_num=int(row[0]),
            version=str(row[1]),
            role_connection_limit=int(row[2]),
            database_connection_limit=int(row[3]),
            server_connection_slots=int(row[4]),
        )

    async def _startup_problems(self, conn: Connection, server: ServerInfo) -> list[str]:
        settings = self._settings
        problems: list[str] = []
        if server.version_num < 160000:
            problems.append(f"PostgreSQL {server.version} is too old: this server needs PostgreSQL 16 or newer")
        limits = (
            (
                server.role_connection_limit,
                f"the CONNECTION LIMIT {server.role_connection_limit} of role {settings.role!r}",
            ),
            (
                server.database_connection_limit,
                f"the CONNECTION LIMIT {server.database_connection_limit} of database {settings.dbname!r}",
            ),
            (
                server.server_connection_slots,
                f"the server's {server.server_connection_slots} connection slots (max_connections less "
                "superuser_reserved_connections and reserved_connections)",
            ),
        )
        for limit, what in limits:
            if limit >= 0 and settings.pool_max_size >= limit:
                problems.append(
                    f"MCP_POOL_MAX_SIZE={settings.pool_max_size} is not below {what}\nhint: lower MCP_POOL_MAX_SIZE "
                    f"to at most {max(1, limit - 1)}, so a diagnosis connection and an operator's psql still fit, "
                    "or raise that limit"
                )
        if not self._layers.role:
            return problems
        role_problems = await role_audit.audit_role(conn)
        if settings.allow_public_temp:
            role_problems = role_audit.accept_public_temp(role_problems)
        if not role_problems:
            return problems
        described = [f"{problem.message}\n    hint: {problem.hint}" for problem in role_problems]
        if settings.dev_allow_privileged_role:
            banner = "!" * 100
            logger.warning(
                "%s\nDEVELOPMENT OVERRIDE: MCP_DEV_ALLOW_PRIVILEGED_ROLE=true, starting although role %r failed "
                "the audit. Never use this in production: a model could change or read everything this role "
                "can.\n%s\n%s",
                banner,
                settings.role,
                "\n".join(f"  - {line}" for line in described),
                banner,
            )
            return problems
        return problems + [
            *described,
            f"role {settings.role!r} is more privileged than a read-only role must be; fix the role "
            "(see compose/initdb/10-roles.sh for the intended grants) or, on a development machine only, set "
            "MCP_DEV_ALLOW_PRIVILEGED_ROLE=true",
        ]

    async def _diagnose_unavailable(self) -> str:
        """Why no connection came in time: one direct connection attempt, cached for a second.

        One attempt at a time (calls that time out together wait for it): the pool plus this one connection must
        fit in the role's CONNECTION LIMIT, or the diagnosis would cause the shortage it reports."""
        async with self._diagnosis_lock:
            now = time.monotonic()
            if self._diagnosis is not None and now - self._diagnosis[0] < DIAGNOSIS_TTL_S:
                return self._diagnosis[1]
            message = await self._diagnose()
            self._diagnosis = (time.monotonic(), message)
            logger.warning("%s", message)
            return message

    async def _diagnose(self) -> str:
        settings = self._settings
        waited = settings.pool_timeout_ms / 1000
        try:
            conn = await psycopg.AsyncConnection.connect(
                **{**settings.database_conninfo(), "connect_timeout": DIAGNOSIS_CONNECT_TIMEOUT_S},
                **_CONNECTION_OPTIONS,
            )
        except psycopg.OperationalError as exc:
            reason = describe_connect_error(exc)
            if "too many" in reason or "connection slots" in reason:
                what = "the database has no free connection slots (too many connections)"
            elif "starting up" in reason or "shutting down" in reason or "recovery" in reason:
                what = "the database is restarting"
            elif diagnose(str(exc), settings.failure_target()).permanent:
                what = "the database refused the server's credentials (an operator must fix the configuration)"
            else:
                what = "the database is unreachable"
            message = (
                f"database unavailable: {what} ({reason}); no connection within {waited:.1f} s. "
                "This is transient: retry in about 5 seconds"
            )
        else:
            await conn.close()
            stats = self.pool_stats()
            message = (
                f"database busy: all {stats.get('pool_size', settings.pool_max_size)} pooled connections were in "
                f"use for {waited:.1f} s. This is transient: retry in a few seconds, and prefer cheaper queries"
            )
        return message


def _host(conn: Connection) -> str:
    """The host a connection was made to (still known once it is broken, not once it is closed)."""
    try:
        return conn.info.host
    except psycopg.Error:
        return ""


_CONNECTION_OPTIONS: dict[str, Any] = {
    "autocommit": True,  # transactions are explicit (BEGIN READ ONLY ... ROLLBACK), one per call
    "prepare_threshold": None,  # never server-side prepared statements: DISCARD ALL would orphan them
    "context": ADAPTERS,
}


__all__ = ["ADAPTERS", "JSON_TYPE_OIDS", "Connection", "Database", "ServerInfo", "describe_connect_error"]
