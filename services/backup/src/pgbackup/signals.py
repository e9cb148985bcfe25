"""SIGTERM and SIGINT for the long-running commands: flip the Cancellation, keep the main thread free.

The work runs in a worker thread while the main thread waits in short interruptible joins, so a signal
is handled at once (Python runs handlers in the main thread only) even while the worker sits inside a
blocking database call or waits for pg_dump.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from pgbackup.cancel import Cancellation

logger = logging.getLogger(__name__)

T = TypeVar("T")
JOIN_INTERVAL = 0.5


def install_handlers(cancel: Cancellation) -> None:
    """Route SIGTERM and SIGINT to `cancel.cancel()`."""

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        logger.warning("received %s: stopping (a running dump is aborted and its partial files removed)", name)
        cancel.cancel(name)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_in_worker(work: Callable[[], T], *, name: str) -> T:
    """Run `work` in a thread, wait for it from the main thread, return its result or raise its error."""
    outcome: dict[str, T] = {}
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the main thread below
            failure.append(exc)

    worker = threading.Thread(target=target, name=name)
    worker.start()
    while worker.is_alive():
        worker.join(JOIN_INTERVAL)
    if failure:
        raise failure[0]
    return outcome["value"]
