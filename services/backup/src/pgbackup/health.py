"""Health is freshness: the newest *good* set (its latest check passed) must be younger than the schedule's period
plus the grace, and the volume must have room for the next set. A live process proves nothing about backups.
Every retained set must also have passed its latest check (a scrub or a drill that found a set broken turns the
sidecar unhealthy until retention replaces it after the next good backup), no set directory may be damaged, and
with BACKUP_DRILL_SCHEDULE the last scheduled drill must have passed and not be overdue.

Reads only the backups volume (sets, state, free space): no network, so the container health check is
cheap and says the same thing whether or not the database is up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pgbackup.catalog import Catalog
from pgbackup.clock import Clock, to_iso
from pgbackup.config import Settings
from pgbackup.state import State


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    reasons: tuple[str, ...]
    newest_verified: str | None
    newest_verified_age_seconds: float | None
    max_age_seconds: float
    free_bytes: int | None
    required_free_bytes: int
    failed_sets: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "reasons": list(self.reasons),
            "newest_verified": self.newest_verified,
            "newest_verified_age_seconds": self.newest_verified_age_seconds,
            "max_age_seconds": self.max_age_seconds,
            "free_bytes": self.free_bytes,
            "required_free_bytes": self.required_free_bytes,
            "failed_sets": list(self.failed_sets),
        }


def required_free_bytes(settings: Settings, catalog: Catalog) -> int:
    """Free space the next backup needs: the last set's size plus the margin, at least the floor."""
    last = catalog.sets[-1].manifest.bytes if catalog.sets else 0
    return max(settings.min_free_bytes, math.ceil(last * (1 + settings.free_space_margin / 100)))


def assess(settings: Settings, catalog: Catalog, state: State | None, free: int | None, clock: Clock) -> Health:
    """Healthy iff the newest verified set is fresh (or none is due yet) and the next one fits."""
    now = clock.now()
    max_age = settings.max_backup_age
    required = required_free_bytes(settings, catalog)
    reasons = []
    newest = catalog.newest_verified
    age: float | None = None
    if newest is not None:
        age = (now - newest.snapshot_at).total_seconds()
        if age > max_age:
            reasons.append(
                f"the newest verified set {newest.id} is {age:.0f} s old, over the {max_age:.0f} s that "
                f"'{settings.cadence.text}' plus the grace allow"
            )
    elif state is None:
        reasons.append(f"no verified set and no state in {settings.backup_dir}: the sidecar has not run here")
    else:
        waiting = (now - state.initialized_at).total_seconds()
        if waiting > max_age:
            reasons.append(
                f"no verified set since the sidecar first started here at {to_iso(state.initialized_at)} "
                f"({waiting:.0f} s ago, over {max_age:.0f} s)"
            )
    for backup_set in catalog.failed:
        assert backup_set.verification is not None
        reasons.append(
            f"set {backup_set.id} failed its {backup_set.verification.latest.describe()} (it is not used for "
            "restores; the next good backup's retention removes it: check the disk, then `make backup-now`)"
        )
    for path in catalog.damaged:
        reasons.append(f"set {path.name} is damaged: its manifest does not parse (move it out of {path.parent})")
    reasons += _drill_problems(settings, state, now)
    if free is None:
        reasons.append(f"unable to read the free space of {settings.backup_dir}")
    elif free < required:
        reasons.append(f"{free} bytes free in {settings.backup_dir}, the next set needs {required}")
    return Health(
        healthy=not reasons,
        reasons=tuple(reasons),
        newest_verified=newest.id if newest else None,
        newest_verified_age_seconds=None if age is None else round(age, 3),
        max_age_seconds=max_age,
        free_bytes=free,
        required_free_bytes=required,
        failed_sets=tuple(backup_set.id for backup_set in catalog.failed),
    )


def _drill_problems(settings: Settings, state: State | None, now: datetime) -> list[str]:
    """With BACKUP_DRILL_SCHEDULE: the last scheduled drill failed, or none passed within its period + grace."""
    max_age = settings.max_drill_age
    if max_age is None or settings.drill_cadence is None:
        return []
    if state is not None and state.last_drill_outcome == "failure" and state.last_drill_at is not None:
        return [f"the scheduled restore drill at {to_iso(state.last_drill_at)} failed: {state.last_drill_error}"]
    since = state.last_drill_at if state is not None and state.last_drill_at is not None else None
    if since is None:
        since = state.initialized_at if state is not None else None
    if since is not None and (now - since).total_seconds() > max_age:
        return [
            f"the scheduled restore drill is overdue: none since {to_iso(since)}, over the {max_age:.0f} s that "
            f"'{settings.drill_cadence.text}' plus the grace allow"
        ]
    return []
