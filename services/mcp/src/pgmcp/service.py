"""What the tools share: settings, layers, the database, the executor, the guard's verdicts, the schema reader and
the metrics. `Service.build` is the composition root: it wires the parts, and `open` hands the guard the function
policy the database read at startup (the guard never reaches into the database, nor the database into the guard).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgmcp.config import Settings
from pgmcp.db import Database
from pgmcp.execute import Executor
from pgmcp.identity import CALLER, Identity
from pgmcp.layers import Layers
from pgmcp.metrics import Metrics
from pgmcp.schema import SchemaReader
from pgmcp.verdicts import Verdicts
from pgmcp.workers import WorkerSlot, pool_share


@dataclass(frozen=True, slots=True)
class Service:
    """One server's parts. `principal` names callers that bring no API key (in-process, stdio)."""

    settings: Settings
    layers: Layers
    database: Database
    executor: Executor
    verdicts: Verdicts
    schema_reader: SchemaReader
    metrics: Metrics
    principal: str

    worker: WorkerSlot | None = None  # one of several worker processes (`pgmcp.workers`), else None

    @classmethod
    def build(
        cls,
        settings: Settings,
        layers: Layers,
        principal: str,
        worker: WorkerSlot | None = None,
        *,
        startup_check: bool = False,
    ) -> Service:
        """`startup_check`: a service that only runs the startup checks (the workers' supervisor), whose
        placement samples must not become metric series of its own (`pgmcp.metrics`)."""
        pool_sizes = None
        if worker is not None:
            pool_sizes = (
                pool_share(settings.pool_min_size, worker.workers, worker.index),
                pool_share(settings.pool_max_size, worker.workers, worker.index),
            )
        metrics = Metrics(multiprocess=worker is not None, worker=worker.index if worker is not None else 0)
        on_server = None if startup_check else metrics.observe_server
        database = Database(settings, layers, pool_sizes=pool_sizes, on_server=on_server)
        executor = Executor(settings, layers, database, on_watchdog=metrics.watchdog_cancels.inc)
        metrics.watch_pool(database.pool_stats)
        verdicts = Verdicts(layers, explain_analyze=settings.allow_explain_analyze)
        reader = SchemaReader(executor, settings)
        return cls(settings, layers, database, executor, verdicts, reader, metrics, principal, worker)

    async def open(self) -> None:
        """Open the database (probe, role audit, pool), then give the guard the function policy it read."""
        self.verdicts.load(await self.database.open())

    async def close(self) -> None:
        await self.database.close()

    def caller(self) -> str:
        """Who is calling: the identity's name over HTTP, else this server's principal (in-process, stdio)."""
        identity = CALLER.get()
        return self.principal if identity is None else identity.name

    def identity(self) -> Identity | None:
        """The HTTP caller's identity (its tools and row limit), None in-process and over stdio."""
        return CALLER.get()


__all__ = ["Service"]
