"""`healthcheck`: exit 0 iff the newest verified set is fresh and the next set fits; the container's
HEALTHCHECK. Reads only the volume: no network."""

from __future__ import annotations

import argparse

from pgbackup.catalog import scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode
from pgbackup.files import free_bytes
from pgbackup.health import assess
from pgbackup.state import read_state

NAME = "healthcheck"
HELP = "exit 0 when the newest verified set is fresh for the schedule plus grace, 1 otherwise"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    """No options."""


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    try:
        free: int | None = free_bytes(settings.backup_dir)
    except OSError:
        free = None
    health = assess(settings, scan(settings.sets_dir), read_state(settings.state_file), free, clock)
    if health.healthy:
        print(f"healthy: newest verified set {health.newest_verified} is {health.newest_verified_age_seconds} s old")
        return ExitCode.OK
    print("unhealthy: " + "; ".join(health.reasons))
    return ExitCode.UNHEALTHY
