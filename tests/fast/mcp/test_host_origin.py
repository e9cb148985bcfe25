"""The Host/Origin allow-list: our middleware decides, and the SDK's own check (configured from the same settings)
must accept everything ours accepts, or clients would meet its bare "Invalid Host header" instead of our message.
The SDK matches `host:*` as a prefix, so it is the looser of the two; ours runs first."""

from __future__ import annotations

import pytest
from mcp.server.transport_security import TransportSecurityMiddleware

from pgmcp.app import transport_security
from pgmcp.config import Settings
from pgmcp.http import HostOriginGuard

SETTINGS = Settings(
    allowed_hosts=("127.0.0.1", "localhost", "[::1]", "mcp", "api.example.com:8443"),
    allowed_origins=("http://localhost", "https://ai.example.com:444"),
)
HOSTS = {
    "127.0.0.1": True,
    "127.0.0.1:8080": True,
    "localhost:1": True,
    "[::1]:8080": True,
    "[::1]": True,
    "mcp:8080": True,
    "api.example.com:8443": True,
    "api.example.com:8444": False,
    "api.example.com": False,
    "evil.example": False,
    "127.0.0.1.evil.example": False,
    "localhost.evil:80": False,
    "mcp:80:80": False,
    "": False,
}
ORIGINS = {
    "http://localhost": True,
    "http://localhost:6274": True,
    "https://localhost": False,
    "https://ai.example.com:444": True,
    "https://ai.example.com": False,
    "http://localhost.evil.example": False,
    "null": False,
}


def guard() -> HostOriginGuard:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    return HostOriginGuard(
        app,
        allowed_hosts=SETTINGS.allowed_hosts,
        allowed_origins=SETTINGS.allowed_origins,
        on_reject=lambda reason: None,
    )


@pytest.mark.parametrize(("host", "allowed"), HOSTS.items(), ids=[host or "empty" for host in HOSTS])
def test_hosts(host: str, allowed: bool) -> None:
    sdk = TransportSecurityMiddleware(transport_security(SETTINGS))
    assert guard().host_allowed(host) is allowed
    if allowed:
        assert sdk._validate_host(host)  # the SDK sees the lowercase Host our middleware passes on


@pytest.mark.parametrize(("origin", "allowed"), ORIGINS.items())
def test_origins(origin: str, allowed: bool) -> None:
    sdk = TransportSecurityMiddleware(transport_security(SETTINGS))
    assert guard().origin_allowed(origin) is allowed
    if allowed:
        assert sdk._validate_origin(origin)


def test_malformed_allow_list_entries_are_refused() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="malformed allowed origin 'localhost'"):
        HostOriginGuard(app, allowed_hosts=["x"], allowed_origins=["localhost"], on_reject=print)
