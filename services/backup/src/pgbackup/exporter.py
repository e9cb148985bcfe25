"""The status server of `run`: GET /status (JSON) and GET /metrics (Prometheus text), nothing else.

It binds BACKUP_STATUS_BIND:BACKUP_STATUS_PORT on the internal backup network only (Compose publishes
no port for it) and serves from a daemon thread; every answer is computed from the volume when asked.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.status import StatusCollector, build_status

logger = logging.getLogger(__name__)


class StatusServer:
    """`start()` binds and serves in the background; `stop()` shuts it down. Port 0 picks a free port."""

    def __init__(self, settings: Settings, clock: Clock, running: Callable[[], bool]) -> None:
        registry = CollectorRegistry()
        registry.register(StatusCollector(settings, clock, running))

        class Handler(BaseHTTPRequestHandler):
            server_version = "pgbackup"

            def do_GET(self) -> None:  # the name http.server dispatches to
                try:
                    if self.path == "/status":
                        body = json.dumps(build_status(settings, clock, running=running()), indent=2).encode()
                        self._send(200, "application/json", body)
                    elif self.path == "/metrics":
                        self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                    else:
                        self._send(404, "text/plain", b"not found: use /status or /metrics\n")
                except Exception as exc:  # a broken scrape must not kill the server thread
                    logger.error("status request failed path=%s: %s", self.path, exc)
                    self._send(500, "text/plain", b"internal error: see the sidecar's log\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # http.server's signature
                logger.debug("status request %s", format % args)

        self._server = ThreadingHTTPServer((settings.status_bind, settings.status_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="pgbackup-status", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        logger.info("status server listening port=%d paths=/status,/metrics", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
