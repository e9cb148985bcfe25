"""`python -m pgmcp healthcheck`: the container's health check (the image has no curl).

Exit status 0 when GET http://127.0.0.1:$MCP_PORT/healthz answers 200 within 2 seconds, 1 otherwise, with the
reason on stderr. Only `MCP_PORT` is read: the check must work even when other settings are being changed.
"""

from __future__ import annotations

import http.client
import sys
from collections.abc import Mapping

TIMEOUT_S = 2.0
DEFAULT_PORT = 8080


def check(environ: Mapping[str, str]) -> int:
    raw = environ.get("MCP_PORT", str(DEFAULT_PORT)).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        print(f"healthcheck: MCP_PORT={raw!r} is not a port number", file=sys.stderr)
        return 1
    port = int(raw)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        connection.request("GET", "/healthz", headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        response.read()
    except OSError as exc:
        print(f"healthcheck: GET http://127.0.0.1:{port}/healthz failed: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"healthcheck: GET http://127.0.0.1:{port}/healthz answered {response.status}", file=sys.stderr)
        return 1
    return 0


__all__ = ["check"]
