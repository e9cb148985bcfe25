"""Where a worker reads: the server its pooled connections are on (a standby or the primary) and that server's
replay lag, and the one decision libpq cannot take, keeping off a standby that lags more than
`MCP_MAX_REPLICA_LAG`.

libpq chooses the server: a host list with `target_session_attrs=prefer-standby` and `load_balance_hosts=random`
puts every new connection on a random standby, or on the primary when no standby answers (psycopg honours both
for async connections). What this module adds, once per `CHECK_INTERVAL_S` in each worker (`Placement.watch`):
- it samples the server of one pooled connection (the pool hands them out in turn, so every connection is seen)
  and its lag, for /readyz and /metrics;
- a standby whose lag is over the limit is left out of the host list the pool connects with, and the pool is
  drained, so that the following calls reconnect elsewhere (another standby, else the primary);
- a standby that drops a pooled connection (stopped, restarted, gone) is left out the same way, so that the
  replacements do not wait on it (a host that went away costs each attempt `connect_timeout`, twice with
  prefer-standby);
- while reads are on the primary or a standby is left out, one short connection with
  `target_session_attrs=standby` asks whether a standby answers within the limit again; if one does, it is put
  back and the pool drained, so reads return to standbys. A standby that went away is found the same way.

The lag is the time since the last replayed transaction while WAL received is still waiting to be replayed, and
0 when the standby has replayed everything it received (an idle primary sends nothing, which is no lag).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
PROBE_CONNECT_TIMEOUT_S = 1

# One row: (in recovery, replay lag in seconds or NULL on a primary). Functions the guard also allows a model.
PLACEMENT_SQL = (
    "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) END::float8"
)


@dataclass(frozen=True, slots=True)
class Server:
    """One sample: which server a connection reads from, and how far behind the primary it is."""

    host: str
    standby: bool
    replay_lag_s: float | None  # None on a primary
    sampled_at: float  # time.monotonic()

    def describe(self) -> dict[str, Any]:
        """For /readyz: `{"host", "role", "replay_lag_seconds"}`."""
        return {
            "host": self.host,
            "role": "standby" if self.standby else "primary",
            "replay_lag_seconds": None if self.replay_lag_s is None else round(self.replay_lag_s, 3),
        }


async def sample(conn: psycopg.AsyncConnection[Any]) -> Server:
    """The server `conn` is on (in autocommit, outside a transaction: one round trip)."""
    cur = await conn.execute(PLACEMENT_SQL, prepare=False)
    row = await cur.fetchone()
    if row is None:  # pragma: no cover - a SELECT without FROM always returns one row
        raise psycopg.OperationalError("the placement query returned no row")
    return Server(host=conn.info.host, standby=bool(row[0]), replay_lag_s=row[1], sampled_at=time.monotonic())


class Placement:
    """The host list the pool connects with (`conninfo`), and what the last sample saw (`current`).

    `conninfo` is the settings' connection with any standby that lags too much taken out of its host list (never
    every host: the primary fallback always stays). With one host and `target_session_attrs=any` there is nothing
    to choose, and `routing` is False: the sample is then only for /readyz and /metrics."""

    def __init__(self, conninfo: Mapping[str, Any], max_lag_ms: int) -> None:
        self._conninfo = dict(conninfo)
        hosts = str(self._conninfo.get("host") or "").split(",")
        ports = str(self._conninfo.get("port") or "").split(",")
        self._hosts = [host.strip() for host in hosts if host.strip()]
        self._ports = [port.strip() for port in ports] if len(ports) == len(hosts) and len(hosts) > 1 else []
        self._max_lag_s = max_lag_ms / 1000 if max_lag_ms else None
        self._left_out: set[str] = set()
        self._standbys: set[str] = set()  # hosts last sampled as standbys
        attrs = str(self._conninfo.get("target_session_attrs") or "any")
        self.prefers_standby = attrs in ("prefer-standby", "standby")
        self.routing = len(self._hosts) > 1 or self.prefers_standby or self._max_lag_s is not None
        self.current: Server | None = None

    @property
    def max_lag_s(self) -> float | None:
        return self._max_lag_s

    @property
    def left_out(self) -> frozenset[str]:
        return frozenset(self._left_out)

    def conninfo(self) -> dict[str, Any]:
        """The connection keywords for the next pooled connection."""
        if not self._left_out:
            return dict(self._conninfo)
        keep = [index for index, host in enumerate(self._hosts) if host not in self._left_out]
        if not keep:
            return dict(self._conninfo)
        chosen = {**self._conninfo, "host": ",".join(self._hosts[index] for index in keep)}
        if self._ports:
            chosen["port"] = ",".join(self._ports[index] for index in keep)
        return chosen

    def too_far_behind(self, server: Server) -> bool:
        return (
            server.standby
            and self._max_lag_s is not None
            and server.replay_lag_s is not None
            and server.replay_lag_s > self._max_lag_s
        )

    def observe(self, server: Server) -> bool:
        """Record a pooled connection's sample; True when the pool must be drained (its standby lags too much)."""
        self.current = server
        if server.standby:
            self._standbys.add(server.host)
        else:
            self._standbys.discard(server.host)
        if not self.too_far_behind(server) or server.host not in self._hosts:
            return False
        self._left_out.add(server.host)
        logger.warning(
            "standby %s replays %.1f s behind the primary, more than MCP_MAX_REPLICA_LAG=%.1f s: reading elsewhere "
            "until it catches up",
            server.host,
            server.replay_lag_s or 0.0,
            self._max_lag_s or 0.0,
        )
        return True

    def dropped(self, host: str) -> bool:
        """A pooled connection to `host` was found broken. A standby (as last sampled) is left out of the host list
        until the probe finds it answering again; True when the pool must be drained (its other connections to
        that host are likely broken too). A primary stays: it is the fallback, and the probe only finds standbys."""
        if not self.prefers_standby or host not in self._standbys or host in self._left_out:
            return False
        if not [other for other in self._hosts if other != host and other not in self._left_out]:
            return False  # the host list never empties
        self._left_out.add(host)
        logger.warning("standby %s dropped a connection: reading elsewhere until it answers again", host)
        return True

    def wants_probe(self) -> bool:
        """Whether reads might return to a standby: they are on the primary, or a standby is left out."""
        if not self.prefers_standby:
            return bool(self._left_out)
        return bool(self._left_out) or (self.current is not None and not self.current.standby)

    async def probe(self, options: Mapping[str, Any]) -> bool:
        """One short connection to any standby of the full host list; True when the pool must be drained
        (a standby answers within the lag limit while reads are elsewhere)."""
        keywords = {
            **self._conninfo,
            **options,
            "target_session_attrs": "standby",
            "connect_timeout": PROBE_CONNECT_TIMEOUT_S,
        }
        try:
            conn = await psycopg.AsyncConnection.connect(**keywords)
        except psycopg.OperationalError:
            return False  # no standby answers: stay where we are
        try:
            server = await sample(conn)
        except psycopg.Error:
            return False
        finally:
            await conn.close()
        if self.too_far_behind(server):
            return False
        if server.host in self._left_out:
            self._left_out.discard(server.host)
            logger.info(
                "standby %s caught up (replay lag %.1f s): reading from it again", server.host, server.replay_lag_s
            )
        on_primary = self.current is not None and not self.current.standby
        if on_primary and self.prefers_standby:
            logger.info("standby %s answers: reads move back from the primary to standbys", server.host)
            return True
        return False


__all__ = ["CHECK_INTERVAL_S", "PLACEMENT_SQL", "Placement", "Server", "sample"]
