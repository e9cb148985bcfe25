"""Logging for the sidecar: JSON lines on stdout, the same fields as pgmcp's (docs/conventions.md).

`{"ts": "2026-01-01T02:30:00.123Z", "level": "INFO", "logger": "pgbackup.dump", "msg": "backup finished
set=... bytes=..."}`, plus `exception` (the traceback, on the same line) when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

ROOT = "pgbackup"


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record; `msg` is the message with its arguments filled in."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = {"ts": moment.replace("+00:00", "Z"), "level": record.levelname, "logger": record.name}
        line["msg"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time of the record (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure(level: str) -> None:
    """Send the package's log records to stdout at `level` (idempotent: a second call changes the level)."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(isinstance(handler, StdoutHandler) for handler in logger.handlers):
        handler = StdoutHandler(sys.stdout)
        handler.setFormatter(JsonLinesFormatter())
        logger.addHandler(handler)
    logger.propagate = False
