"""BACKUP_SCHEDULE: parse the schedule text, install it on a `schedule.Scheduler`, and say how often it runs.

Two forms, case-insensitive:
  every N minutes | every N hours   (N >= 1; "every 1 hour" and "every hour" work too)
  daily at HH:MM                     (24-hour clock, in BACKUP_TZ)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import schedule

_INTERVAL = re.compile(r"^every\s+(?:(?P<count>\d+)\s+)?(?P<unit>minute|minutes|hour|hours)$")
_DAILY = re.compile(r"^daily\s+at\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})$")
EXAMPLES = "'every 60 minutes', 'every 6 hours' or 'daily at 02:30'"


@dataclass(frozen=True, slots=True)
class Cadence:
    """A parsed schedule: either a fixed interval or a daily wall-clock time in a time zone."""

    text: str
    period_seconds: int
    daily_at: str | None = None  # "HH:MM" for the daily form

    @property
    def period(self) -> timedelta:
        """The longest regular gap between two runs (a daily run across a DST change is within grace)."""
        return timedelta(seconds=self.period_seconds)

    def install(self, scheduler: schedule.Scheduler, job: Callable[[], Any], tz: str) -> schedule.Job:
        """Add `job` to `scheduler` at this cadence; daily times are read in time zone `tz`."""
        if self.daily_at is not None:
            installed = scheduler.every().day.at(self.daily_at, tz).do(job)
        elif self.period_seconds % 3600 == 0:
            installed = scheduler.every(self.period_seconds // 3600).hours.do(job)
        else:
            installed = scheduler.every(self.period_seconds // 60).minutes.do(job)
        if not isinstance(installed, schedule.Job):
            raise TypeError(f"schedule returned {installed!r} instead of a Job")
        return installed


def parse_cadence(text: str) -> Cadence:
    """Parse BACKUP_SCHEDULE; raise ValueError with the accepted forms when it is not understood."""
    normalized = " ".join(text.strip().lower().split())
    interval = _INTERVAL.match(normalized)
    if interval:
        count = int(interval.group("count") or "1")
        if count < 1:
            raise ValueError(f"the interval must be at least 1\nhint: use {EXAMPLES}")
        unit_seconds = 3600 if interval.group("unit").startswith("hour") else 60
        return Cadence(text=normalized, period_seconds=count * unit_seconds)
    daily = _DAILY.match(normalized)
    if daily:
        hour, minute = int(daily.group("hour")), int(daily.group("minute"))
        if hour > 23 or minute > 59:
            raise ValueError(f"{hour:02d}:{minute:02d} is not a time of day\nhint: use HH:MM from 00:00 to 23:59")
        return Cadence(text=normalized, period_seconds=24 * 3600, daily_at=f"{hour:02d}:{minute:02d}")
    raise ValueError(f"not a schedule this sidecar understands (a schedule, not a duration)\nhint: use {EXAMPLES}")
