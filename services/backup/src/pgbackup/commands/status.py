"""`status`: the status document as JSON (the same as GET /status of the running sidecar)."""

from __future__ import annotations

import argparse
import json

from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode
from pgbackup.status import build_status

NAME = "status"
HELP = "print the status as JSON: health, last runs, failures, sets, last drill"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    """No options."""


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    print(json.dumps(build_status(settings, clock), indent=2))
    return ExitCode.OK
