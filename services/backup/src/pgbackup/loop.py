"""`run`: the schedule loop. A `schedule.Scheduler` fires the jobs at their cadences: the backup
(BACKUP_SCHEDULE), the scrub (BACKUP_SCRUB_SCHEDULE) and the restore drill (BACKUP_DRILL_SCHEDULE, off by
default). Each runs in a worker thread, one at a time (the scheduler waits for it; the run lock stops other
processes' backups); a failing job is recorded and the loop goes on; SIGTERM aborts the job and ends the loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import schedule

from pgbackup.cancel import Cancellation
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.drill import scheduled_drill
from pgbackup.errors import AbortedError
from pgbackup.runner import BackupRunner
from pgbackup.scrub import scrub
from pgbackup.signals import run_in_worker

logger = logging.getLogger(__name__)

MAX_IDLE = 60.0


class BackupLoop:
    """The scheduler, its one job, and whether that job is running (for /status and /metrics)."""

    def __init__(self, settings: Settings, *, clock: Clock, cancel: Cancellation) -> None:
        self.settings = settings
        self.clock = clock
        self.cancel = cancel
        self.runner = BackupRunner(settings, clock, cancel)
        self.scheduler = schedule.Scheduler()
        self.job = settings.cadence.install(self.scheduler, self.run_job, settings.tz)
        self.scrub_job = (
            None
            if settings.scrub_cadence is None
            else settings.scrub_cadence.install(self.scheduler, self.run_scrub, settings.tz)
        )
        self.drill_job = (
            None
            if settings.drill_cadence is None
            else settings.drill_cadence.install(self.scheduler, self.run_drill, settings.tz)
        )
        self._running = threading.Event()
        self.runs = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def run_job(self) -> bool:
        """One scheduled run, in a worker thread; never raises."""
        if self.cancel.cancelled:
            return False
        self._running.set()
        try:
            ok = run_in_worker(self.runner.run_job, name="pgbackup-backup")
        finally:
            self._running.clear()
        self.runs += 1
        self.failures += 0 if ok else 1
        logger.info("next backup at %s (%s, %s)", self.job.next_run, self.settings.cadence.text, self.settings.tz)
        return ok

    def run_scrub(self) -> bool:
        """One scheduled scrub, in a worker thread; never raises."""
        return self._guarded("scrub", lambda: scrub(self.settings, clock=self.clock, cancel=self.cancel).ok)

    def run_drill(self) -> bool:
        """One scheduled restore drill, in a worker thread; never raises."""
        return self._guarded("drill", lambda: scheduled_drill(self.settings, clock=self.clock, cancel=self.cancel))

    def _guarded(self, what: str, work: Callable[[], bool]) -> bool:
        if self.cancel.cancelled:
            return False
        try:
            return run_in_worker(work, name=f"pgbackup-{what}")
        except AbortedError as exc:
            logger.warning("%s aborted: %s", what, exc.message)
        except Exception as exc:  # the loop must survive anything a job does
            logger.error("%s failed: %s", what, exc)
        return False

    def run_forever(self) -> None:
        """Back up on start if configured, then at the cadence, until cancelled."""
        settings = self.settings
        logger.info(
            "backup loop started schedule=%r tz=%s on_start=%s scrub=%r drill=%r",
            settings.cadence.text,
            settings.tz,
            settings.on_start,
            settings.scrub_cadence.text if settings.scrub_cadence else "off",
            settings.drill_cadence.text if settings.drill_cadence else "off",
        )
        if self.settings.on_start:
            self.run_job()
        while not self.cancel.cancelled:
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            self.cancel.wait(MAX_IDLE if idle is None else min(MAX_IDLE, max(0.1, idle)))
        logger.info("backup loop stopped after runs=%d failures=%d", self.runs, self.failures)
