"""Logging for the sidecar: one event per line on stdout, `key=value` fields, UTC timestamps."""

from __future__ import annotations

import logging
import sys
import time

ROOT = "pgbackup"


class KeyValueFormatter(logging.Formatter):
    """`2026-01-01T02:30:00.123Z level=info logger=pgbackup.dump backup finished set=... bytes=...`"""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        level = record.levelname.lower()
        line = f"{moment}.{int(record.msecs):03d}Z level={level} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += " " + self.formatException(record.exc_info).replace("\n", "\n    ")
        return line


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time of the record (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure(level: str) -> None:
    """Send the package's log records to stdout at `level` (idempotent)."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(isinstance(handler, StdoutHandler) for handler in logger.handlers):
        handler = StdoutHandler(sys.stdout)
        handler.setFormatter(KeyValueFormatter())
        logger.addHandler(handler)
    logger.propagate = False
