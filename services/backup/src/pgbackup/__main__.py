"""`python -m pgbackup <command>`: parse, load the settings, run the command, map errors to exit codes
(`pgbackup.errors.ExitCode`; 0-5 and 70 mean the same as for pgmcp, docs/conventions.md)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from pgbackup import logs
from pgbackup.clock import Clock, SystemClock
from pgbackup.commands import COMMANDS, build_parser
from pgbackup.config import Settings
from pgbackup.errors import BackupError, ExitCode

logger = logging.getLogger("pgbackup")


def main(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, clock: Clock | None = None
) -> int:
    # Sets hold every row of every database: files 0640, directories 0750, whatever the caller's umask.
    os.umask(0o027)
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    # Docker reads every non-zero health check status as unhealthy and reserves 2: healthcheck uses 1 only.
    failed = (lambda code: ExitCode.UNHEALTHY) if command.NAME == "healthcheck" else (lambda code: code)
    logs.configure("INFO")  # until the settings say otherwise: a deprecated spelling's warning is logged
    try:
        settings = Settings.from_env(os.environ if environ is None else environ, read_secrets=command.CONNECTS)
    except BackupError as exc:
        print(f"pgbackup {command.NAME}: {exc}", file=sys.stderr)
        return int(failed(exc.exit_code))
    logs.configure(settings.log_level)
    try:
        return int(command.execute(args, settings, clock or SystemClock()))
    except BackupError as exc:
        logger.error("%s failed: %s", command.NAME, exc.message)
        print(f"pgbackup {command.NAME}: error: {exc}", file=sys.stderr)
        return int(failed(exc.exit_code))
    except Exception:
        logger.exception("%s failed with an unexpected error (a bug: please report it with this log)", command.NAME)
        return int(failed(ExitCode.INTERNAL))


if __name__ == "__main__":
    sys.exit(main())
