"""Several server processes per container (`MCP_WORKERS`), sharing one port.

One process is not enough for the calls a 2-core machine can serve: most of a call's CPU time is the MCP SDK's
request handling, which one event loop runs one at a time. So `python -m pgmcp` becomes a small supervisor:

1. it runs the startup checks once (probe, role audit, the pool against the connection limits), so a bad
   configuration still ends with the documented exit status before anything listens;
2. it reserves the port (bound with SO_REUSEPORT, not listening: a taken port fails here, before any fork),
   then forks the workers; each opens its own pool (its share of `MCP_POOL_MIN_SIZE` and `MCP_POOL_MAX_SIZE`,
   which stay the server's totals) and listens on a socket of its own in the same SO_REUSEPORT group, so that
   the kernel spreads new connections evenly over the workers. (One inherited listening socket let whichever
   worker woke first accept a whole burst: ten clients connecting at once could all land on one worker, which
   halved the throughput of a run at random.) A connection queued on a worker that dies is reset;
3. it restarts a worker that dies (what that worker had in flight is lost, nothing else), and gives up when
   workers keep dying (`MAX_RESTARTS` within `RESTART_WINDOW_S`), exiting with the last worker's status;
4. on SIGTERM or SIGINT it passes the signal on, waits for the workers' graceful shutdown, and exits 0.

What the workers share lives in `Shared`, made before the fork: the calls each worker has in flight per caller
(so `MCP_MAX_CONCURRENCY_PER_KEY` holds for the server as a whole, not per worker) and whether each worker
serves (so `/readyz` answers for the container). `/metrics` adds up every worker's counters through
prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, a private directory set before the library
is imported). Log lines carry the worker's number. With one worker none of this runs: the server is the
process.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgmcp.config import Settings
from pgmcp.errors import StartupRefused

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CALLERS_IN_FLIGHT = 4096
"""Distinct callers (keys, OAuth identities) a server holds calls in flight for at once."""
_DIGEST = 32
_FREE = bytes(_DIGEST)
_FREE_LIST = [0] * _DIGEST


def container_cpus() -> int:
    """The CPUs this process may use: its affinity set, lowered by a cgroup v2 CPU quota (`docker run --cpus`)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity set is the limit
    return max(1, count)


def worker_count(settings: Settings) -> int:
    """`MCP_WORKERS`, or with `auto` one per CPU, never more than the pool has connections to share."""
    if settings.workers:
        return settings.workers
    return max(1, min(container_cpus(), settings.pool_max_size))


def pool_share(total: int, workers: int, index: int) -> int:
    """Worker `index`'s part of `total` connections: an even split, the first workers taking the remainder."""
    return total // workers + (1 if index < total % workers else 0)


class Shared:
    """What the workers of one server share, in memory made before the fork: a lock, whether each worker serves,
    and the calls in flight per caller and worker.

    Callers are not known in advance (keys are added while the server runs, OAuth subjects are many), so the
    in-flight table has `capacity` rows, each the SHA-256 of a caller's name (all zero: free) and one count per
    worker. A caller takes a row while it has calls in flight and gives it back when its last call ends; a
    server with `capacity` distinct callers in flight at once refuses the next one (`take` returns None)."""

    def __init__(self, workers: int, capacity: int = CALLERS_IN_FLIGHT) -> None:
        context = multiprocessing.get_context("fork")
        self.workers = workers
        self.capacity = capacity
        self._lock = context.Lock()
        self._names = context.RawArray("B", capacity * _DIGEST)
        self._in_flight = context.RawArray("i", capacity * workers)
        self._serving = context.RawArray("b", workers)
        self._hints: dict[bytes, int] = {}  # this process's last known row of each caller, checked before use

    def _row(self, name: bytes, *, claim: bool) -> int | None:
        """The row of caller `name` (a digest), or with `claim` a free row made its own; None when neither."""
        hint = self._hints.get(name)
        if hint is not None and bytes(self._names[hint * _DIGEST : (hint + 1) * _DIGEST]) == name:
            return hint
        row = self._search(name, claim=claim)
        if row is not None:
            if len(self._hints) >= self.capacity:
                self._hints.clear()
            self._hints[name] = row
        return row

    def _search(self, name: bytes, *, claim: bool) -> int | None:
        names = memoryview(self._names).tobytes()
        start = 0
        while (found := names.find(name, start)) != -1:
            if found % _DIGEST == 0:
                return found // _DIGEST
            start = found + 1
        if not claim:
            return None
        start = 0
        while (free := names.find(_FREE, start)) != -1:
            if free % _DIGEST == 0:
                row = free // _DIGEST
                self._names[free : free + _DIGEST] = name
                return row
            start = free + 1
        return None

    def _total(self, row: int) -> int:
        base = row * self.workers
        return int(sum(self._in_flight[base : base + self.workers]))

    def take(self, worker: int, caller: str, limit: int) -> int | None:
        """One more call of `caller` in flight on `worker`, unless the server has `limit` already (or the table
        is full): the new total, or None."""
        name = _caller_digest(caller)
        with self._lock:
            row = self._row(name, claim=True)
            if row is None:
                logger.error("more than %d callers have calls in flight at once: refusing one", self.capacity)
                return None
            total = self._total(row)
            if total >= limit:
                return None
            self._in_flight[row * self.workers + worker] += 1
            return total + 1

    def give(self, worker: int, caller: str) -> int:
        """One call of `caller` on `worker` ended: the server's new total (at 0 the row is free again)."""
        name = _caller_digest(caller)
        with self._lock:
            row = self._row(name, claim=False)
            if row is None:
                return 0  # its worker died and was forgotten meanwhile
            index = row * self.workers + worker
            self._in_flight[index] = max(0, self._in_flight[index] - 1)
            total = self._total(row)
            if total == 0:
                self._release(row)
            return total

    def _release(self, row: int) -> None:
        self._names[row * _DIGEST : (row + 1) * _DIGEST] = _FREE

    def set_serving(self, worker: int, serving: bool) -> None:
        self._serving[worker] = 1 if serving else 0

    def serving(self) -> list[int]:
        """The workers that serve now."""
        return [index for index in range(self.workers) if self._serving[index]]

    def forget(self, worker: int) -> None:
        """A worker died: what it had in flight is gone, and it does not serve."""
        with self._lock:
            for row in range(self.capacity):
                self._in_flight[row * self.workers + worker] = 0
                if self._names[row * _DIGEST : (row + 1) * _DIGEST] != _FREE_LIST and self._total(row) == 0:
                    self._release(row)
            self._serving[worker] = 0


def _caller_digest(caller: str) -> bytes:
    return hashlib.sha256(caller.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """One worker's view of `Shared`: its number and the server's worker count."""

    shared: Shared
    index: int

    @property
    def workers(self) -> int:
        return self.shared.workers


def prepare_metrics_directory() -> Path:
    """A private, empty directory for the workers' metric files, named in the environment before
    prometheus_client is imported (the library reads it at import time)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the multiprocess directory was set")
    # /dev/shm first: memory, and writable in a container with a read-only root filesystem (Docker mounts it)
    shm = Path("/dev/shm")
    try:
        base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        directory = Path(tempfile.mkdtemp(prefix="pgmcp-metrics-", dir=base))
    except OSError as exc:
        raise StartupRefused(
            [
                f"MCP_WORKERS needs a writable directory for the workers' metrics, and neither /dev/shm nor the "
                f"temporary directory is one ({exc.strerror or exc})\nhint: mount a tmpfs at /tmp (the stack does), "
                "or set MCP_WORKERS=1"
            ]
        ) from None
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def _port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to the server's address in its SO_REUSEPORT group (IPv6 for a bracketed or colon address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    return sock


def reserve(host: str, port: int) -> socket.socket:
    """The supervisor's hold on the port: bound, never listening (the kernel hands connections only to listening
    sockets), so that a taken port fails before the workers start and no other program binds it meanwhile
    (joining the group needs SO_REUSEPORT and the same user)."""
    return _port_socket(host, port)


def listen(host: str, port: int) -> socket.socket:
    """One worker's listening socket, in the group the supervisor reserved."""
    sock = _port_socket(host, port)
    sock.listen(2048)
    return sock


class Supervisor:
    """Forks `workers` processes running `run_worker(slot)` (which returns an exit status), restarts the ones
    that die, and stops them all on SIGTERM or SIGINT."""

    def __init__(self, shared: Shared, run_worker: Callable[[WorkerSlot], int], on_exit: Callable[[int], None]):
        self._shared = shared
        self._run_worker = run_worker
        self._on_exit = on_exit  # called with each dead worker's pid (metrics clean-up)
        self._children: dict[int, int] = {}  # pid -> worker index
        self._stopping = False
        self._restarts: list[float] = []

    def _spawn(self, index: int) -> None:
        if threading.active_count() > 1:
            logger.warning("forking with %d threads running: only the calling one goes on", threading.active_count())
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 70
            try:
                status = self._run_worker(WorkerSlot(self._shared, index))
            except BaseException:  # the worker's own handler logged it; never return into the supervisor
                logging.getLogger(__name__).exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)
        self._children[pid] = index
        logger.info("started worker %d (pid %d)", index, pid)

    def _stop(self, signum: int, _frame: Any) -> None:
        if not self._stopping:
            logger.info("stopping %d workers (%s)", len(self._children), signal.Signals(signum).name)
        self._stopping = True
        for pid in list(self._children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # already gone: its exit is collected below

    def run(self) -> int:
        """Serve until stopped; the exit status: 0 after a stop, else the status of the worker that kept dying."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self._shared.workers):
            self._spawn(index)
        status = 0
        while self._children:
            try:
                pid, raw = os.wait()
            except ChildProcessError:
                break
            if pid not in self._children:
                continue
            index = self._children.pop(pid)
            self._shared.forget(index)
            self._on_exit(pid)
            code = os.waitstatus_to_exitcode(raw)
            if self._stopping:
                continue
            now = time.monotonic()
            self._restarts = [moment for moment in self._restarts if now - moment < RESTART_WINDOW_S] + [now]
            if len(self._restarts) > MAX_RESTARTS:
                logger.error(
                    "worker %d exited with status %d, the %dth exit within %.0f s: stopping the server",
                    index, code, len(self._restarts), RESTART_WINDOW_S,
                )  # fmt: skip
                status = code if code > 0 else 70
                self._stop(signal.SIGTERM, None)
                continue
            logger.warning("worker %d (pid %d) exited with status %d: starting it again", index, pid, code)
            self._spawn(index)
        return status


def cleanup_metrics_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


__all__ = [
    "MULTIPROC_ENV",
    "Shared",
    "Supervisor",
    "WorkerSlot",
    "listen",
    "reserve",
    "cleanup_metrics_directory",
    "container_cpus",
    "pool_share",
    "prepare_metrics_directory",
    "worker_count",
]
