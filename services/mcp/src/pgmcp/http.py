"""HTTP security as pure-ASGI middleware, outermost first:

1. `HostOriginGuard`: `Host` must be allow-listed (else 421), a browser `Origin` too (else 403); answers CORS
   preflights for allowed origins. Applies to every path, whatever address the server is bound to.
2. `Authenticate`: `Authorization: Bearer <API key or access token>` on `/mcp` (`pgmcp.keys`, `pgmcp.oauth`);
   401 with `WWW-Authenticate` and the reason otherwise. The caller's identity is in `pgmcp.identity.CALLER`.
3. `StatelessOnly`: the endpoint is stateless, so it offers no server-to-client SSE stream: GET (and DELETE) on
   `/mcp` get 405 with `Allow: POST`, as the transport spec allows, instead of a stream that never carries
   anything and holds a connection (and a concurrency slot) forever.
4. `KeyConcurrencyLimit`: at most `MCP_MAX_CONCURRENCY_PER_KEY` requests in flight per key, else 429 with
   `Retry-After`. A request counts from the moment its headers are in, so a slow upload holds a slot too.
5. `BodyLimit`: bodies larger than `MCP_MAX_REQUEST_BYTES` get 413 before anything parses them.
6. `ToolScopes`: 403 for a `tools/call` of a tool the caller's key or token does not allow.

Rejections are small JSON-RPC error bodies (id null) that say what to fix. Non-HTTP scopes pass through.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgmcp.identity import CALLER, SCOPE_READ, TOOLS, Identity, scope_for
from pgmcp.keys import KeyStore
from pgmcp.oauth import TokenRefused, Verifier, looks_like_jwt
from pgmcp.workers import WorkerSlot

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
BODY_KEY = "pgmcp.body"
"""The scope key under which `BodyLimit` leaves the request body it buffered, for `ToolScopes`."""
RETRY_AFTER_S = 1
# JSON-RPC error codes for transport-level refusals (implementation-defined range -32000..-32099).
_CODE = {
    401: -32001,
    403: -32003,
    413: -32013,
    421: -32021,
    429: -32029,
}
_CORS_ALLOW_HEADERS = (
    "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id"
)
_CORS_EXPOSE_HEADERS = "mcp-session-id, www-authenticate, retry-after"

Reject = Callable[[str], None]
"""Called with a reason label for every refused request (metrics)."""


async def send_error(send: Send, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": _CODE.get(status, -32000), "message": message}})
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body.encode()})


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`host[:port]` (IPv6 in brackets) as (lowercase host, port or None); None when malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        host, rest = value[: end + 1], value[end + 1 :]
    else:
        host, _, port_text = value.partition(":")
        rest = f":{port_text}" if port_text else ""
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit():
        return None
    return host, int(rest[1:])


class HostOriginGuard:
    """421 for a `Host` that is not allow-listed, 403 for a browser `Origin` that is not; CORS for the allowed."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Iterable[str], allowed_origins: Iterable[str], on_reject: Reject
    ) -> None:
        self.app = app
        self._hosts = [_split_host(item) for item in allowed_hosts]
        if any(item is None for item in self._hosts):
            raise ValueError(f"malformed allowed host in {list(allowed_hosts)!r}")
        self._origins: list[tuple[str, tuple[str, int | None]]] = []
        for origin in allowed_origins:
            scheme, _, authority = origin.lower().partition("://")
            parsed = _split_host(authority)
            if scheme not in ("http", "https") or parsed is None:
                raise ValueError(f"malformed allowed origin {origin!r}: expected scheme://host[:port]")
            self._origins.append((scheme, parsed))
        self._on_reject = on_reject

    def host_allowed(self, value: str | None) -> bool:
        parsed = _split_host(value or "")
        if parsed is None:
            return False
        return any(
            allowed is not None and allowed[0] == parsed[0] and allowed[1] in (None, parsed[1])
            for allowed in self._hosts
        )

    def origin_allowed(self, value: str) -> bool:
        scheme, _, authority = value.strip().lower().partition("://")
        parsed = _split_host(authority)
        if parsed is None:
            return False
        return any(
            scheme == allowed_scheme and host == parsed[0] and port in (None, parsed[1])
            for allowed_scheme, (host, port) in self._origins
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.host_allowed(host):
            self._on_reject("misdirected_host")
            await send_error(
                send,
                421,
                f"Host header {host!r} is not accepted by this server: connect through an allowed name "
                "(the operator lists them in MCP_ALLOWED_HOSTS)",
            )
            return
        # Host names are case-insensitive: pass on the lowercase form, so the SDK's own check agrees with ours.
        scope = {**scope, "headers": [_lowercase_host(name, value) for name, value in scope["headers"]]}
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if not self.origin_allowed(origin):
            self._on_reject("forbidden_origin")
            await send_error(
                send,
                403,
                f"Origin {origin!r} is not allowed to call this server (browser cross-origin request); the operator "
                "lists allowed origins in MCP_ALLOWED_ORIGINS",
            )
            return
        cors = [
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", _CORS_EXPOSE_HEADERS),
            ("vary", "origin"),
        ]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = [
                *cors,
                ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
                ("access-control-allow-headers", _CORS_ALLOW_HEADERS),
                ("access-control-max-age", "600"),
                ("content-length", "0"),
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in preflight],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *[(n.encode(), v.encode("latin-1")) for n, v in cors]],
                }
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _lowercase_host(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    return (name, value.lower()) if name in (b"host", b"origin") else (name, value)


def bearer_challenge(
    metadata_url: str | None, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """A `WWW-Authenticate` value (RFC 6750), with RFC 9728's `resource_metadata` when OAuth is on."""
    parts = [f'resource_metadata="{metadata_url}"'] if metadata_url else ['realm="pgmcp"']
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    if error and description:
        parts.append('error_description="' + description.replace("\\", "").replace('"', "'") + '"')
    return ("Bearer " + ", ".join(parts)).encode("ascii", "replace").decode("ascii")


class Authenticate:
    """Bearer credentials on `/mcp`: an API key (`pgmcp.keys`, constant-time against every key) or, with
    `MCP_OAUTH_ISSUER`, a JWT access token (`pgmcp.oauth`). 401 with `WWW-Authenticate` (pointing at the
    protected resource metadata when OAuth is on) and the reason otherwise: missing, unknown, revoked, expired,
    invalid; 403 `insufficient_scope` for a token without any of this server's scopes. The caller's `Identity`
    is in `CALLER` while the request is served."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyStore | None,
        verifier: Verifier | None = None,
        metadata_url: str | None = None,
        on_reject: Reject,
        on_identified: Callable[[Identity], None] | None = None,
    ) -> None:
        if keys is None and verifier is None:
            raise ValueError("no API keys and no OAuth issuer: set MCP_API_KEYS_FILE or MCP_OAUTH_ISSUER")
        self.app = app
        self._keys = keys
        self._verifier = verifier
        self._metadata_url = metadata_url
        self._on_reject = on_reject
        self._on_identified = on_identified or (lambda identity: None)

    def challenge(self, error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
        return bearer_challenge(self._metadata_url, error, description, scope)

    async def identify(self, authorization: str | None) -> Identity:
        """The caller an `Authorization` header authenticates, or `TokenRefused`."""
        how = "an API key" + (" or an OAuth access token" if self._verifier else "")
        if authorization is None:
            if self._verifier is None:
                raise TokenRefused(
                    401, "", "missing API key: send `Authorization: Bearer <key>` (ask the operator for a key)"
                )
            raise TokenRefused(401, "", f"missing credentials: send `Authorization: Bearer <{how}>`")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise TokenRefused(401, "invalid_request", f"the Authorization header must be `Bearer <{how}>`")
        if self._verifier is not None and (self._keys is None or looks_like_jwt(token)):
            return await self._verifier.verify(token)
        assert self._keys is not None
        found = self._keys.identify(token)
        if found.entry is None:
            raise TokenRefused(
                401, "invalid_token", "unknown API key: check the key, or ask the operator for a new one"
            )
        if found.refusal is not None:
            raise TokenRefused(401, "invalid_token", f"{found.refusal}: ask the operator for a new key")
        return found.entry.identity()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_mcp_path(scope["path"]) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        try:
            identity = await self.identify(Headers(scope=scope).get("authorization"))
        except TokenRefused as refused:
            self._on_reject("forbidden" if refused.status == 403 else "unauthorized")
            headers = [("www-authenticate", self.challenge(refused.error, refused.description, refused.scope))]
            if refused.status == 503:
                headers = [("retry-after", "30")]
            await send_error(send, refused.status, refused.description, headers)
            return
        self._on_identified(identity)
        token = CALLER.set(identity)
        try:
            await self.app(scope, receive, send)
        finally:
            CALLER.reset(token)


class ToolScopes:
    """403 for a `tools/call` of a tool the caller's key or token does not allow, before the call reaches the
    SDK (`insufficient_scope` with the scope it needs, for a token). Reads the body `BodyLimit` (outside it)
    buffered; a body that is not a JSON object passes on, for the SDK to refuse."""

    def __init__(self, app: ASGIApp, *, metadata_url: str | None, on_reject: Reject) -> None:
        self.app = app
        self._metadata_url = metadata_url
        self._on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = CALLER.get()
        if scope["type"] != "http" or identity is None or identity.tools is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        tool = _called_tool(scope.get(BODY_KEY, b""))
        if tool is not None and not identity.allows(tool):
            self._on_reject("forbidden")
            if identity.kind == "oauth":
                needed = scope_for(tool) if tool in TOOLS else SCOPE_READ
                description = f"the access token lacks the scope {needed} that the tool {tool} needs"
                header = bearer_challenge(self._metadata_url, "insufficient_scope", description, needed)
            else:
                allowed = ", ".join(sorted(identity.tools))
                description = f"the API key {identity.name!r} may not call {tool} (it may call: {allowed})"
                header = bearer_challenge(self._metadata_url, "insufficient_scope", description)
            await send_error(send, 403, description, [("www-authenticate", header)])
            return
        await self.app(scope, receive, send)


def _called_tool(body: bytes) -> str | None:
    """The tool a JSON-RPC `tools/call` body names, else None."""
    if b"tools/call" not in body:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return name if isinstance(name, str) else None


class StatelessOnly:
    """405 for anything but POST (and CORS preflights) on `/mcp`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_mcp_path(scope["path"]) or scope["method"] in ("POST", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": -32600,
                    "message": f"{scope['method']} is not supported: this endpoint is stateless and answers POST only "
                    "(no SSE stream, no session to delete)",
                },
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    (b"allow", b"POST"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for bodies over the limit, by `Content-Length` or by counting a streamed body; then replays it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, on_reject: Reject) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self._max = max_bytes
        self._on_reject = on_reject

    async def _refuse(self, send: Send) -> None:
        self._on_reject("too_large")
        await send_error(
            send,
            413,
            f"request body larger than {self._max} bytes: send a shorter statement (the operator sets "
            "MCP_MAX_REQUEST_BYTES)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_mcp_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await self._refuse(send)
            return
        messages: deque[Message] = deque()
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self._max:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.popleft() if messages else await receive()

        body = b"".join(message.get("body", b"") for message in messages if message["type"] == "http.request")
        await self.app({**scope, BODY_KEY: body}, replay, send)


class InFlight:
    """The calls each caller has in flight in this process, for `KeyConcurrencyLimit`. `pgmcp.workers.Shared` does
    the same for all the workers of a server (`take(key)` and `give(key)` through a `WorkerSlot`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def take(self, key: str) -> int | None:
        current = self._counts.get(key, 0)
        if current >= self.limit:
            return None
        self._counts[key] = current + 1
        return current + 1

    def give(self, key: str) -> int:
        remaining = self._counts[key] - 1
        if remaining:
            self._counts[key] = remaining
        else:
            del self._counts[key]
        return remaining


class SharedInFlight:
    """`InFlight` over the server's workers: the limit counts every worker's calls (`pgmcp.workers.Shared`)."""

    def __init__(self, limit: int, slot: WorkerSlot) -> None:
        self.limit = limit
        self._slot = slot

    def take(self, key: str) -> int | None:
        return self._slot.shared.take(self._slot.index, key, self.limit)

    def give(self, key: str) -> int:
        return self._slot.shared.give(self._slot.index, key)


class KeyConcurrencyLimit:
    """429 with `Retry-After` once a key has `limit` requests in flight on `/mcp` (in this server: all its
    workers together when `in_flight` is a `SharedInFlight`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        on_reject: Reject,
        on_change: Callable[[str, int], None] | None = None,
        in_flight: InFlight | SharedInFlight | None = None,
    ) -> None:
        """`on_change(key, +1 or -1)`: a call of `key` started or ended here (the in-flight gauge of this
        process, which the metrics add up over workers)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self._limit = limit
        self._in_flight = in_flight or InFlight(limit)
        self._on_reject = on_reject
        self._on_change = on_change or (lambda key, delta: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = CALLER.get()
        if scope["type"] != "http" or identity is None:
            await self.app(scope, receive, send)
            return
        key = identity.name
        if self._in_flight.take(key) is None:
            self._on_reject("too_many_requests")
            await send_error(
                send,
                429,
                f"too many concurrent requests for {'key ' if identity.kind == 'key' else ''}{key!r} "
                f"(limit {self._limit}): wait for answers before "
                f"sending more, retry after {RETRY_AFTER_S} s",
                [("retry-after", str(RETRY_AFTER_S))],
            )
            return
        self._on_change(key, 1)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight.give(key)
                self._on_change(key, -1)

        async def send_releasing(message: Message) -> None:
            # the slot is free before the answer's last byte leaves: a client that sends its next call as soon as it
            # has the answer (on another connection, to another worker) never finds its own finished call counted
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_releasing)
        finally:
            release()


def _is_mcp_path(path: str) -> bool:
    return path == MCP_PATH or path.startswith(MCP_PATH + "/")


__all__ = [
    "MCP_PATH",
    "Authenticate",
    "BodyLimit",
    "HostOriginGuard",
    "InFlight",
    "KeyConcurrencyLimit",
    "SharedInFlight",
    "StatelessOnly",
    "ToolScopes",
    "bearer_challenge",
    "send_error",
]
