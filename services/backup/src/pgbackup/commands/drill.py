"""`drill [--set ID|latest] [--report PATH] [--max-rto DURATION] [--max-rpo DURATION]`: prove a set restores."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST
from pgbackup.clock import Clock
from pgbackup.config import Settings, parse_duration
from pgbackup.drill import run_drill, summary
from pgbackup.errors import ExitCode
from pgbackup.signals import install_handlers, run_in_worker

NAME = "drill"
HELP = "restore a set on a private throwaway server, verify it against its manifest, measure RTO and RPO"
CONNECTS = False


def _seconds(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: {exc}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: must be more than 0")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="set_id", default=LATEST, metavar="ID|latest", help="the set (default: latest verified)"
    )
    parser.add_argument(
        "--report", type=Path, metavar="PATH", help="JSON report path (default: BACKUP_DIR/drills/<start>-<set>.json)"
    )
    parser.add_argument(
        "--max-rto", type=_seconds, metavar="DURATION", help="fail when RTO is longer (default BACKUP_DRILL_MAX_RTO)"
    )
    parser.add_argument(
        "--max-rpo", type=_seconds, metavar="DURATION", help="fail when RPO is longer (default BACKUP_DRILL_MAX_RPO)"
    )


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    report = run_in_worker(
        lambda: run_drill(
            settings,
            selector=args.set_id,
            report_path=args.report,
            max_rto=args.max_rto or settings.drill_max_rto,
            max_rpo=args.max_rpo or settings.drill_max_rpo,
            clock=clock,
            cancel=cancel,
        ),
        name="pgbackup-drill",
    )
    cancel.check()
    print(summary(report))
    if not report.verified:
        return ExitCode.VERIFY
    if not report.within_thresholds:
        return ExitCode.THRESHOLD
    return ExitCode.OK
