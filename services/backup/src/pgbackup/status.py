"""The sidecar's status, as one JSON document (`status` command, GET /status) and as Prometheus
metrics (GET /metrics), both computed from the volume at the moment they are asked for."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pgbackup.catalog import scan
from pgbackup.clock import Clock, from_iso, to_iso
from pgbackup.config import Settings
from pgbackup.files import free_bytes, read_json
from pgbackup.health import assess
from pgbackup.state import read_state

logger = logging.getLogger(__name__)


def latest_drill(drills_dir: Path) -> dict[str, Any] | None:
    """The newest drill report (file names start with the drill's UTC start time)."""
    try:
        reports = sorted(path for path in drills_dir.glob("*.json") if not path.name.startswith("."))
    except OSError:
        return None
    for path in reversed(reports):
        try:
            data = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def build_status(settings: Settings, clock: Clock, *, running: bool | None = None) -> dict[str, Any]:
    catalog = scan(settings.sets_dir)
    state = read_state(settings.state_file)
    try:
        free: int | None = free_bytes(settings.backup_dir)
    except OSError:
        free = None
    health = assess(settings, catalog, state, free, clock)
    newest = catalog.sets[-1] if catalog.sets else None
    drill = latest_drill(settings.drills_dir)
    return {
        "now": to_iso(clock.now()),
        "schedule": settings.cadence.text,
        "tz": settings.tz,
        "running": running,
        "health": health.to_dict(),
        "state": state.to_dict() if state else None,
        "sets": {
            "count": len(catalog.sets),
            "verified": sum(1 for backup_set in catalog.sets if backup_set.verified),
            "bytes": sum(backup_set.manifest.bytes for backup_set in catalog.sets),
            "newest": newest.id if newest else None,
            "newest_verified": health.newest_verified,
            "failed": [
                {"id": backup_set.id, "check": backup_set.verification.latest.describe()}
                for backup_set in catalog.failed
                if backup_set.verification is not None
            ],
            "damaged": [path.name for path in catalog.damaged],
        },
        "last_drill": None
        if drill is None
        else {
            **{
                key: drill.get(key)
                for key in ("set_id", "started_at", "passed", "rto_seconds", "rpo_seconds", "report_path")
            },
            "scratch": (drill.get("scratch") or {}).get("kind"),  # memory or disk; None in older reports
        },
    }


def _timestamp(value: str | None) -> float | None:
    return None if value is None else from_iso(value).timestamp()


class StatusCollector(Collector):
    """Prometheus collector that reads the status on each scrape (no gauge can go stale in memory)."""

    def __init__(self, settings: Settings, clock: Clock, running: Callable[[], bool]) -> None:
        self.settings = settings
        self.clock = clock
        self.running = running

    def collect(self) -> Iterator[Metric]:
        status = build_status(self.settings, self.clock, running=self.running())
        state = status["state"] or {}
        health = status["health"]
        sets = status["sets"]
        drill = status["last_drill"] or {}

        def gauge(name: str, documentation: str, value: float | None) -> Iterator[Metric]:
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=float(value))

        def counter(name: str, documentation: str, value: float) -> Iterator[Metric]:
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], float(value))
            yield family

        yield from gauge("pgbackup_up", "1 while the sidecar runs", 1)
        yield from gauge(
            "pgbackup_healthy", "1 when the newest verified set is fresh and the next set fits", int(health["healthy"])
        )
        yield from gauge("pgbackup_running", "1 while a backup runs", int(bool(status["running"])))
        yield from gauge(
            "pgbackup_last_success_timestamp_seconds",
            "end of the last successful backup",
            _timestamp(state.get("last_success_at")),
        )
        yield from gauge(
            "pgbackup_last_attempt_timestamp_seconds",
            "start of the last backup attempt",
            _timestamp(state.get("last_attempt_at")),
        )
        yield from gauge(
            "pgbackup_last_duration_seconds",
            "duration of the last successful backup",
            state.get("last_duration_seconds"),
        )
        yield from gauge("pgbackup_last_size_bytes", "size of the last successful set", state.get("last_bytes"))
        yield from gauge(
            "pgbackup_newest_verified_age_seconds",
            "age of the newest verified set's snapshot",
            health["newest_verified_age_seconds"],
        )
        yield from gauge(
            "pgbackup_max_age_seconds", "age at which the newest verified set is stale", health["max_age_seconds"]
        )
        yield from gauge(
            "pgbackup_consecutive_failures",
            "failed backups since the last success",
            state.get("consecutive_failures", 0),
        )
        failures = CounterMetricFamily("pgbackup_failures", "failed backup runs since the volume was created")
        failures.add_metric([], float(state.get("failures_total", 0)))
        yield failures
        successes = CounterMetricFamily("pgbackup_successes", "successful backup runs since the volume was created")
        successes.add_metric([], float(state.get("successes_total", 0)))
        yield successes
        yield from gauge("pgbackup_sets", "complete sets kept", sets["count"])
        yield from gauge("pgbackup_sets_verified", "sets whose last verification passed", sets["verified"])
        yield from gauge("pgbackup_sets_bytes", "bytes of all sets", sets["bytes"])
        yield from gauge("pgbackup_free_bytes", "free bytes on the backups volume", health["free_bytes"])
        yield from gauge(
            "pgbackup_sets_failed", "sets whose latest check (scrub, drill, verify) failed", len(sets["failed"])
        )
        yield from gauge("pgbackup_sets_damaged", "set directories whose manifest does not parse", len(sets["damaged"]))
        yield from gauge(
            "pgbackup_last_scrub_timestamp_seconds", "end of the last scrub", _timestamp(state.get("last_scrub_at"))
        )
        if state.get("last_scrub_outcome") is not None:
            yield from gauge(
                "pgbackup_last_scrub_success",
                "1 when the last scrub found every set good",
                int(state["last_scrub_outcome"] == "success"),
            )
        yield from gauge("pgbackup_last_scrub_bytes", "bytes the last scrub read", state.get("last_scrub_bytes"))
        yield from counter("pgbackup_scrubs", "scrubs run since the volume was created", state.get("scrubs_total", 0))
        yield from counter(
            "pgbackup_scrub_failures", "scrubs that found a failed or damaged set", state.get("scrub_failures_total", 0)
        )
        yield from gauge(
            "pgbackup_last_scheduled_drill_timestamp_seconds",
            "end of the last drill run by BACKUP_DRILL_SCHEDULE",
            _timestamp(state.get("last_drill_at")),
        )
        if state.get("last_drill_outcome") is not None:
            yield from gauge(
                "pgbackup_last_scheduled_drill_success",
                "1 when the last scheduled drill passed",
                int(state["last_drill_outcome"] == "success"),
            )
        yield from counter("pgbackup_scheduled_drills", "scheduled drills run", state.get("drills_total", 0))
        yield from counter(
            "pgbackup_scheduled_drill_failures", "scheduled drills that failed", state.get("drill_failures_total", 0)
        )
        if self.settings.offsite:
            yield from gauge("pgbackup_offsite_enabled", "1 when each verified set is copied offsite", 1)
            yield from gauge(
                "pgbackup_offsite_last_success_timestamp_seconds",
                "end of the last complete offsite copy",
                _timestamp(state.get("offsite_last_success_at")),
            )
            yield from gauge(
                "pgbackup_offsite_last_failure_timestamp_seconds",
                "time of the last failed offsite copy",
                _timestamp(state.get("offsite_last_failure_at")),
            )
            yield from gauge(
                "pgbackup_offsite_consecutive_failures",
                "failed offsite copies since the last complete one",
                state.get("offsite_consecutive_failures", 0),
            )
            yield from counter(
                "pgbackup_offsite_copies", "complete offsite copies", state.get("offsite_copies_total", 0)
            )
            yield from counter(
                "pgbackup_offsite_failures", "failed offsite copies", state.get("offsite_failures_total", 0)
            )
        if drill:
            yield from gauge(
                "pgbackup_drill_passed", "1 when the last restore drill passed", int(bool(drill.get("passed")))
            )
            yield from gauge("pgbackup_drill_rto_seconds", "RTO measured by the last drill", drill.get("rto_seconds"))
            yield from gauge("pgbackup_drill_rpo_seconds", "RPO measured by the last drill", drill.get("rpo_seconds"))
            yield from gauge(
                "pgbackup_drill_timestamp_seconds", "start of the last drill", _timestamp(drill.get("started_at"))
            )
