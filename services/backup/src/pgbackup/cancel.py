"""Cooperative cancellation: SIGTERM stops the child tools and the running queries, the worker cleans up.

The signal handler (main thread) calls `Cancellation.cancel()`. That terminates every registered child
process and cancels every registered database connection's running query from a helper thread
(psycopg's `cancel_safe` is made for that). The worker then sees its tool or query fail, calls
`check()`, gets AbortedError and removes its partial files on the way out.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from pgbackup.errors import AbortedError

logger = logging.getLogger(__name__)

CANCEL_CONNECTION_TIMEOUT = 5.0


class Cancellation:
    """A one-way switch plus the processes and connections to stop when it flips."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[Any]] = set()
        self._connections: set[psycopg.Connection[Any]] = set()
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when cancelled meanwhile (an interruptible sleep)."""
        return self._event.wait(timeout)

    def cancel(self, reason: str) -> None:
        """Flip the switch and stop everything registered; safe to call from a signal handler."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            processes = list(self._processes)
            connections = list(self._connections)
        for process in processes:
            _terminate(process)
        if connections:
            threading.Thread(target=_cancel_queries, args=(connections,), name="pgbackup-cancel", daemon=True).start()

    def check(self) -> None:
        """Raise AbortedError when cancelled."""
        if self._event.is_set():
            raise AbortedError(f"the run was aborted ({self.reason}); its partial files are removed")

    @contextmanager
    def process(self, process: subprocess.Popen[Any]) -> Iterator[None]:
        """Register a child process for the duration of the block."""
        with self._lock:
            self._processes.add(process)
            cancelled = self._event.is_set()
        if cancelled:
            _terminate(process)
        try:
            yield
        finally:
            with self._lock:
                self._processes.discard(process)

    @contextmanager
    def connection(self, connection: psycopg.Connection[Any]) -> Iterator[None]:
        """Register a connection whose running query a cancel interrupts."""
        with self._lock:
            self._connections.add(connection)
        try:
            self.check()
            yield
        finally:
            with self._lock:
                self._connections.discard(connection)


def _terminate(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        try:
            process.terminate()
        except ProcessLookupError:  # it exited between poll() and terminate()
            pass


def _cancel_queries(connections: list[psycopg.Connection[Any]]) -> None:
    for connection in connections:
        try:
            connection.cancel_safe(timeout=CANCEL_CONNECTION_TIMEOUT)
        except Exception as exc:  # the worker notices the cancel anyway; a failed cancel only delays it
            logger.warning("unable to cancel a running query: %s", exc)
