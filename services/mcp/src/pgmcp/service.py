"""What the tools share: settings, layers, the database, the executor, the catalogue reader and the metrics."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from pgmcp.config import Settings
from pgmcp.db import Database
from pgmcp.execute import Executor
from pgmcp.introspect import Catalog
from pgmcp.layers import Layers
from pgmcp.metrics import Metrics

CALLER: ContextVar[str | None] = ContextVar("pgmcp_caller", default=None)
"""The API key name of the HTTP request being served, set by `pgmcp.http.ApiKeyAuth` around the request."""


@dataclass(frozen=True, slots=True)
class Service:
    """One server's parts. `principal` names callers that bring no API key (in-process, stdio)."""

    settings: Settings
    layers: Layers
    database: Database
    executor: Executor
    catalog: Catalog
    metrics: Metrics
    principal: str

    @classmethod
    def build(cls, settings: Settings, layers: Layers, principal: str) -> Service:
        database = Database(settings, layers)
        metrics = Metrics()
        executor = Executor(settings, layers, database, on_watchdog=metrics.watchdog_cancels.inc)
        metrics.watch_pool(database.pool_stats)
        return cls(settings, layers, database, executor, Catalog(executor, settings), metrics, principal)

    def caller(self) -> str:
        """Who is calling: the API key name over HTTP, else this server's principal (in-process, stdio)."""
        return CALLER.get() or self.principal


__all__ = ["CALLER", "Service"]
