"""Logging as JSON lines: one event per line, audit fields merged in, exceptions on the same line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

# Libraries that narrate every request at INFO; their warnings still come through.
_CHATTY = ("mcp", "psycopg.pool", "uvicorn.access", "httpx2", "httpcore2")


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., <audit fields>}`, and `"worker": N` on every line of
    worker N when a server runs several (`pgmcp.workers`)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._worker is not None:
            event["worker"] = self._worker
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            event.update(audit)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False, default=str)


def configure(level: str, stream: TextIO | None = None, *, worker: int | None = None) -> None:
    """Send every log record to `stream` (stdout for HTTP, stderr for stdio, where stdout is the protocol)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(worker))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)


__all__ = ["JsonFormatter", "configure"]
