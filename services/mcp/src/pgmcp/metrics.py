"""Prometheus metrics, one registry per server instance (tests build many servers in one process).

Labels are bounded sets (tool names, outcomes, rule ids, rejection reasons): never SQL text, key secrets or
anything a client can vary freely.

With several workers (`pgmcp.workers`) each worker's values go to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode) and `render()` adds every worker's up, whichever worker the scrape
reaches: counters and histograms sum, gauges of live workers sum (`livesum`). The pool gauges, read from
psycopg_pool at scrape time in one process, are written by each worker every `POOL_REFRESH_S` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from pgmcp.placement import Server

POOL_REFRESH_S = 1.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _PoolCollector(Collector):
    """Pool usage, read from psycopg_pool's counters at scrape time."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        gauge = GaugeMetricFamily("pgmcp_pool_connections", "database connections of the pool", labels=["state"])
        size = stats.get("pool_size", 0)
        available = stats.get("pool_available", 0)
        gauge.add_metric(["open"], size)
        gauge.add_metric(["idle"], available)
        gauge.add_metric(["in_use"], max(0, size - available))
        yield gauge
        waiting = GaugeMetricFamily("pgmcp_pool_requests_waiting", "calls waiting for a pooled connection")
        waiting.add_metric([], stats.get("requests_waiting", 0))
        yield waiting


class Metrics:
    """The server's counters and histograms."""

    def __init__(self, *, multiprocess: bool = False, worker: int = 0) -> None:
        self.multiprocess = multiprocess
        self._worker = str(worker)
        self._reads_from: tuple[str, str] | None = None
        self._pool_stats: Callable[[], Mapping[str, int]] | None = None
        self.registry = CollectorRegistry()
        registry = self.registry
        self.tool_calls = Counter(
            "pgmcp_tool_calls", "tool calls by tool and outcome", ["tool", "outcome"], registry=registry
        )
        self.tool_latency = Histogram(
            "pgmcp_tool_call_duration_seconds",
            "tool call latency",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tool_errors = Counter(
            "pgmcp_tool_errors",
            "failed tool calls by kind (rejected, timeout, unavailable, database_error, "
            "invalid_argument, internal_error)",
            ["tool", "kind"],
            registry=registry,
        )
        self.rejections = Counter(
            "pgmcp_query_rejections", "statements refused by the read-only guard, by rule", ["rule"], registry=registry
        )
        self.rows = Counter("pgmcp_result_rows", "rows returned by query", registry=registry)
        self.result_bytes = Counter("pgmcp_result_bytes", "bytes of values returned by query", registry=registry)
        self.truncations = Counter(
            "pgmcp_result_truncations", "query results cut by a limit", ["reason"], registry=registry
        )
        self.http_rejections = Counter(
            "pgmcp_http_rejections",
            "HTTP requests refused before reaching MCP, by reason",
            ["reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "pgmcp_requests_in_flight",
            "MCP requests being served, per API key name",
            ["key"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.key_last_used = Gauge(
            "pgmcp_api_key_last_used_timestamp_seconds",
            "when each API key last authenticated a request (Unix time; `make api-keys` shows it)",
            ["key"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.watchdog_cancels = Counter(
            "pgmcp_watchdog_cancels",
            "statements the watchdog had to cancel after the server-side timeout",
            registry=registry,
        )

        # where each worker reads (`pgmcp.placement`): one series per worker, whichever worker the scrape reaches
        self.reads_from = Gauge(
            "pgmcp_database_reads_from",
            "1 for the server (host, role: standby or primary) a worker's connections read from, 0 for one it left",
            ["worker", "server", "role"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.replay_lag = Gauge(
            "pgmcp_database_replay_lag_seconds",
            "how far behind the primary the standby a worker reads from replays (0 on the primary)",
            ["worker"],
            registry=registry,
            multiprocess_mode="liveall",
        )

    def observe_server(self, server: Server) -> None:
        """Record a sample of where this worker reads."""
        labels = (server.host, "standby" if server.standby else "primary")
        if self._reads_from is not None and self._reads_from != labels:
            self.reads_from.labels(self._worker, *self._reads_from).set(0)
        self._reads_from = labels
        self.reads_from.labels(self._worker, *labels).set(1)
        self.replay_lag.labels(self._worker).set(server.replay_lag_s or 0.0)

    def watch_pool(self, stats: Callable[[], Mapping[str, int]]) -> None:
        if not self.multiprocess:
            self.registry.register(_PoolCollector(stats))
            return
        self._pool_stats = stats
        self._pool_connections = Gauge(
            "pgmcp_pool_connections",
            "database connections of the pool",
            ["state"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._pool_waiting = Gauge(
            "pgmcp_pool_requests_waiting",
            "calls waiting for a pooled connection",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def refresh(self) -> None:
        """Write this worker's pool gauges (multiprocess mode; a no-op otherwise)."""
        if self._pool_stats is None:
            return
        stats = self._pool_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        self._pool_connections.labels("open").set(size)
        self._pool_connections.labels("idle").set(available)
        self._pool_connections.labels("in_use").set(max(0, size - available))
        self._pool_waiting.set(stats.get("requests_waiting", 0))

    def render(self) -> bytes:
        """The text exposition of every metric: this server's, or with workers, all of theirs added up."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.refresh()
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


__all__ = ["Metrics"]
