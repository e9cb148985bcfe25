"""`run`: the schedule loop. A `schedule.Scheduler` fires the job at the configured cadence; the job runs
in a worker thread (one at a time: the scheduler waits for it, and the run lock stops other processes);
a failing job is recorded and the loop goes on; SIGTERM aborts the job and ends the loop."""

from __future__ import annotations

import logging
import threading

import schedule

from pgbackup.cancel import Cancellation
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.runner import BackupRunner
from pgbackup.signals import run_in_worker

logger = logging.getLogger(__name__)

MAX_IDLE = 60.0


class BackupLoop:
    """The scheduler, its one job, and whether that job is running (for /status and /metrics)."""

    def __init__(self, settings: Settings, *, clock: Clock, cancel: Cancellation) -> None:
        self.settings = settings
        self.cancel = cancel
        self.runner = BackupRunner(settings, clock, cancel)
        self.scheduler = schedule.Scheduler()
        self.job = settings.cadence.install(self.scheduler, self.run_job, settings.tz)
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

    def run_forever(self) -> None:
        """Back up on start if configured, then at the cadence, until cancelled."""
        logger.info(
            "backup loop started schedule=%r tz=%s on_start=%s",
            self.settings.cadence.text,
            self.settings.tz,
            self.settings.on_start,
        )
        if self.settings.on_start:
            self.run_job()
        while not self.cancel.cancelled:
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            self.cancel.wait(MAX_IDLE if idle is None else min(MAX_IDLE, max(0.1, idle)))
        logger.info("backup loop stopped after runs=%d failures=%d", self.runs, self.failures)
