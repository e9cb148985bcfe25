"""The sidecar's memory across restarts, on the backups volume: `BACKUP_DIR/state.json`.

It records backup attempts, successes and failures, and the outcomes of scrubs and scheduled drills (for /status,
/metrics and the health check). The sets
themselves stay the truth about what exists and what is verified; the state never overrides them.
Writers take `BACKUP_DIR/.state.lock` for the read-modify-write, then replace the file atomically.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from pgbackup.clock import Clock, from_iso, to_iso
from pgbackup.files import read_json, write_json_atomic

logger = logging.getLogger(__name__)

FORMAT = 1
_TIMESTAMPS = (
    "initialized_at",
    "last_attempt_at",
    "last_success_at",
    "last_failure_at",
    "last_prune_at",
    "last_scrub_at",
    "last_drill_at",
    "offsite_last_success_at",
    "offsite_last_failure_at",
)


@dataclass(slots=True)
class State:
    """What happened so far; timestamps are aware UTC datetimes, None when it never happened."""

    initialized_at: datetime
    last_attempt_at: datetime | None = None
    last_outcome: str | None = None  # success, failure or aborted
    last_success_at: datetime | None = None
    last_success_set: str | None = None
    last_duration_seconds: float | None = None
    last_bytes: int | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    successes_total: int = 0
    failures_total: int = 0
    consecutive_failures: int = 0
    last_prune_at: datetime | None = None
    last_prune_error: str | None = None
    last_pruned: list[str] = field(default_factory=list)
    last_scrub_at: datetime | None = None
    last_scrub_outcome: str | None = None  # success or failure (a set failed its checks, or one is damaged)
    last_scrub_problems: list[str] = field(default_factory=list)
    last_scrub_bytes: int | None = None
    scrubs_total: int = 0
    scrub_failures_total: int = 0
    last_drill_at: datetime | None = None  # the sidecar's scheduled drills (reports hold every drill's detail)
    last_drill_outcome: str | None = None  # success or failure
    last_drill_error: str | None = None
    drills_total: int = 0
    drill_failures_total: int = 0
    offsite_last_success_at: datetime | None = None  # the end of the last complete offsite copy
    offsite_last_set: str | None = None
    offsite_last_failure_at: datetime | None = None
    offsite_last_error: str | None = None
    offsite_copies_total: int = 0
    offsite_failures_total: int = 0
    offsite_consecutive_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in _TIMESTAMPS:
            value = getattr(self, name)
            data[name] = None if value is None else to_iso(value)
        data["format"] = FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for name in _TIMESTAMPS:
            if values.get(name) is not None:
                values[name] = from_iso(values[name])
        return cls(**values)


def load_state(path: Path, clock: Clock) -> State:
    """The recorded state; a fresh one (initialized now) when there is none or it is unreadable."""
    try:
        return State.from_dict(read_json(path))
    except FileNotFoundError:
        return State(initialized_at=clock.now())
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("state file unreadable, starting a new one path=%s error=%s", path, exc)
        return State(initialized_at=clock.now())


def read_state(path: Path) -> State | None:
    """The recorded state, or None when there is none (read-only: for health and status)."""
    try:
        return State.from_dict(read_json(path))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def update_state(path: Path, clock: Clock, change: Callable[[State], None]) -> State:
    """Apply `change` to the recorded state under the state lock and write it back atomically."""
    lock = path.with_name(".state.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = load_state(path, clock)
        change(state)
        write_json_atomic(path, state.to_dict())
        return state
    finally:
        os.close(fd)
