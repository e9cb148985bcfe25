"""`drills [--format table|markdown|html|json]`: the past restore drills and the trend of RTO and RPO."""

from __future__ import annotations

import argparse
import json

from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.drills import read_history, render_html, render_markdown, render_table
from pgbackup.errors import ExitCode

NAME = "drills"
HELP = "list past restore drills (date, set, verdict, RTO, RPO, scratch); the latest and its trend as Markdown or HTML"
CONNECTS = False
FORMATS = ("table", "markdown", "html", "json")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: one line per drill, newest first; markdown or html: the latest drill and the trend; json: the "
        "reports",
    )


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    entries = read_history(settings.drills_dir)
    if args.format == "json":
        print(json.dumps({"drills": [entry.report for entry in entries]}, indent=2))
    elif args.format == "markdown":
        print(render_markdown(entries), end="")
    elif args.format == "html":
        print(render_html(entries), end="")
    else:
        print(render_table(entries))
    return ExitCode.OK
