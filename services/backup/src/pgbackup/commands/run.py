"""`run` (default): startup checks, the status server, then the schedule loop until SIGTERM."""

from __future__ import annotations

import argparse
import logging

from pgbackup.cancel import Cancellation
from pgbackup.checks import startup_checks
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode
from pgbackup.exporter import StatusServer
from pgbackup.loop import BackupLoop
from pgbackup.signals import install_handlers, run_in_worker
from pgbackup.state import update_state

NAME = "run"
HELP = "run the backup schedule until stopped (the sidecar's command)"
CONNECTS = True

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """No options: everything comes from the BACKUP_* settings."""


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    run_in_worker(lambda: startup_checks(settings, clock=clock, cancel=cancel), name="pgbackup-checks")
    update_state(settings.state_file, clock, lambda state: None)  # records when this volume first saw the sidecar
    loop = BackupLoop(settings, clock=clock, cancel=cancel)
    server = StatusServer(settings, clock, lambda: loop.running) if settings.status_port else None
    if server is not None:
        server.start()
    try:
        loop.run_forever()
    finally:
        if server is not None:
            server.stop()
    return ExitCode.OK
