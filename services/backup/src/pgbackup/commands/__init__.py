"""One module per verb of `python -m pgbackup <command>`; each declares how it is parsed and run.

Every command module has NAME, HELP, CONNECTS (whether it reaches the source server, so the password
secret must be readable), `configure(parser)` and `execute(args, settings, clock) -> int`.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from pgbackup.commands import (
    backup,
    drill,
    drills,
    fetch_offsite,
    healthcheck,
    prune,
    restore,
    run,
    scrub,
    settings,
    status,
    verify,
    verify_offsite,
)
from pgbackup.commands import list as list_sets

COMMANDS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        run,
        backup,
        verify,
        verify_offsite,
        fetch_offsite,
        scrub,
        prune,
        list_sets,
        status,
        restore,
        drill,
        drills,
        healthcheck,
        settings,
    )
}
DEFAULT_COMMAND = "run"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pgbackup",
        description="Scheduled, verified pg_dump backups of PostgreSQL, with restore and restore drills. "
        "Settings come from BACKUP_* environment variables (`python -m pgbackup settings`).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="command", required=False)
    for name, module in COMMANDS.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
    parser.set_defaults(command=DEFAULT_COMMAND)
    return parser


__all__ = ["COMMANDS", "DEFAULT_COMMAND", "build_parser"]
