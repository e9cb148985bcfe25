"""Loopback networking for local servers: a free port to bind, and a GET that returns HTTP errors."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Mapping


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
