"""The OAuth 2.1 resource server (MCP authorization, 2026-07-28): JWT access tokens from one authorization
server, checked against its signing keys, and the protected resource metadata (RFC 9728) that tells a client
where to get them.

A token is accepted when all of these hold (PyJWT does the cryptography and the claim checks):
- its header's `alg` is one of `MCP_OAUTH_ALGORITHMS` (asymmetric only: never `none`, never HS*) and, when the
  key names its own `alg`, that one;
- its signature verifies with the issuer's key of that `kid`, from the JWKS (cached for `JWKS_TTL_S`; an
  unknown `kid` fetches it again, at most every `JWKS_REFRESH_MIN_S`, so a stream of made-up kids cannot make
  the server hammer the issuer; every fetch has a timeout, and the issuer's TLS certificate is checked against
  the system's roots or `MCP_OAUTH_CA_CERT`);
- `iss` is `MCP_OAUTH_ISSUER`, `aud` holds this resource (RFC 8707: a token issued for another server is
  refused, so nobody can replay one here), `exp` is in the future and `nbf`/`iat` not, with `LEEWAY_S` of
  clock skew; `sub` is present.
The token's scopes become the caller's tools (`pgmcp.identity.SCOPES`). The token is never passed on: the
server reaches PostgreSQL with its own role, whoever the caller is.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import jwt

from pgmcp.config import Settings
from pgmcp.identity import SCHEMA_SCOPE_PREFIX, SCOPE_READ, SCOPES, Identity, tools_for_scopes

logger = logging.getLogger(__name__)

JWKS_TTL_S = 600.0
"""How long fetched signing keys are used before they are fetched again."""
JWKS_REFRESH_MIN_S = 5.0
"""The least time between two fetches that an unknown `kid` causes."""
FETCH_TIMEOUT_S = 5.0
LEEWAY_S = 30
METADATA_PATH = "/.well-known/oauth-protected-resource"
_MAX_DOCUMENT_BYTES = 512 * 1024


class TokenRefused(Exception):
    """A bearer token that does not authenticate (401) or does not authorize (403), or keys unavailable (503).
    `error` is the RFC 6750 error code for `WWW-Authenticate`; `description` says what to do."""

    def __init__(self, status: int, error: str, description: str, *, scope: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments: an access token for `Verifier`, not an API key."""
    parts = token.split(".")
    return len(parts) == 3 and all(part.replace("-", "").replace("_", "").isalnum() for part in parts[:2])


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: jwt.PyJWK
    alg: str | None  # the JWK's own `alg`, when it names one


@dataclass(frozen=True, slots=True)
class _Keys:
    keys: dict[str, SigningKey]
    fetched: float


class Verifier:
    """Checks access tokens for this resource. One per server process; safe for concurrent requests."""

    def __init__(self, settings: Settings, *, clock: Any = time.monotonic) -> None:
        self.issuer = settings.oauth_issuer
        self.audience = settings.audience
        self.algorithms = settings.oauth_algorithms
        self._jwks_url = settings.oauth_jwks_url
        self._schema_groups = settings.oauth_schema_scopes
        # the issuer's TLS certificate is checked against MCP_OAUTH_CA_CERT alone when it is set
        self._tls: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=settings.oauth_ca_cert) if settings.oauth_ca_cert else True
        )
        self._clock = clock
        self._keys: _Keys | None = None
        self._last_fetch_attempt = float("-inf")
        self._lock = anyio.Lock()

    async def verify(self, token: str) -> Identity:
        """The caller a token authenticates; `TokenRefused` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRefused(401, "invalid_token", f"the access token is not a readable JWT ({exc})") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRefused(
                401,
                "invalid_token",
                f"the access token is signed with alg {alg!r}, which this server does not accept "
                f"(accepted: {', '.join(self.algorithms)})",
            )
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise TokenRefused(401, "invalid_token", f"the access token is not a readable JWT ({exc})") from None
        if issuer != self.issuer:
            # before any key lookup: another issuer's token must not make this server fetch keys again
            raise TokenRefused(
                401, "invalid_token", f"the access token was not issued by {self.issuer}, the issuer this server trusts"
            )
        key = await self._key(header.get("kid"), alg)
        try:
            claims = jwt.decode(
                token,
                key.key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused(401, "invalid_token", "the access token has expired: get a new one") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused(
                401,
                "invalid_token",
                f"the access token was not issued for this server (its audience must be {self.audience}): "
                "request it with resource=" + self.audience,
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRefused(
                401, "invalid_token", f"the access token was not issued by {self.issuer}, the issuer this server trusts"
            ) from None
        except jwt.InvalidSignatureError:
            raise TokenRefused(401, "invalid_token", "the access token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(401, "invalid_token", f"the access token is not valid: {exc}") from None
        scopes = _scopes(claims)
        tools = tools_for_scopes(scopes)
        if not tools:
            raise TokenRefused(
                403,
                "insufficient_scope",
                f"the access token grants none of this server's scopes ({', '.join(SCOPES)}): request {SCOPE_READ}",
                scope=SCOPE_READ,
            )
        schemas = self._schemas(scopes)
        subject = str(claims["sub"])
        client = claims.get("client_id") or claims.get("azp")
        client_id = str(client) if client is not None else None
        name = f"oauth:{subject}" if client_id in (None, subject) else f"oauth:{client_id}/{subject}"
        return Identity(
            name, "oauth", tools=tools, schemas=schemas, subject=subject, client_id=client_id, scopes=scopes
        )

    def _schemas(self, scopes: tuple[str, ...]) -> tuple[str, ...] | None:
        """With schema groups configured, the schemas of the token's groups (none: 403); else every one."""
        if not self._schema_groups:
            return None
        granted = [names for group, names in self._schema_groups if f"{SCHEMA_SCOPE_PREFIX}{group}" in scopes]
        if not granted:
            wanted = " ".join(f"{SCHEMA_SCOPE_PREFIX}{group}" for group, _ in self._schema_groups)
            raise TokenRefused(
                403,
                "insufficient_scope",
                f"the access token grants no schema group of this server: request one of {wanted}",
                scope=wanted,
            )
        return tuple(dict.fromkeys(name for names in granted for name in names))

    async def _key(self, kid: Any, alg: str) -> SigningKey:
        now = self._clock()
        keys = self._keys
        if keys is None or now - keys.fetched > JWKS_TTL_S or (kid not in keys.keys and self._may_refresh(now)):
            keys = await self._refresh(kid)
        key = keys.keys.get(kid) if kid is not None else _only(keys.keys)
        if key is None:
            raise TokenRefused(
                401, "invalid_token", f"the access token is signed with a key ({kid!r}) the issuer does not publish"
            )
        if key.alg is not None and key.alg != alg:
            raise TokenRefused(401, "invalid_token", f"the key {kid!r} is for {key.alg}, but the token says {alg}")
        return key

    def _may_refresh(self, now: float) -> bool:
        return now - self._last_fetch_attempt >= JWKS_REFRESH_MIN_S

    async def _refresh(self, kid: Any) -> _Keys:
        async with self._lock:
            now = self._clock()
            current = self._keys
            if current is not None and now - current.fetched <= JWKS_TTL_S:
                if kid in current.keys or not self._may_refresh(now):
                    return current  # another request fetched them meanwhile, or fetched just now
            self._last_fetch_attempt = now
            try:
                self._keys = _Keys(await self._fetch(), self._clock())
            except (httpx2.HTTPError, ValueError, jwt.PyJWTError) as exc:
                logger.error("unable to fetch the signing keys of %s: %s", self.issuer, exc)
                if current is not None:
                    return current  # keep using the keys we had
                raise TokenRefused(
                    503,
                    "temporarily_unavailable",
                    f"this server cannot fetch the signing keys of {self.issuer} right now: retry in a minute",
                ) from None
            names = ", ".join(sorted(self._keys.keys)) or "none"
            logger.info("fetched %d signing keys of %s (kids: %s)", len(self._keys.keys), self.issuer, names)
            return self._keys

    async def _fetch(self) -> dict[str, SigningKey]:
        async with httpx2.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False, verify=self._tls) as client:
            url = self._jwks_url or await self._discover(client)
            document = await _get_json(client, url)
        keys: dict[str, SigningKey] = {}
        for item in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig" or item.get("kty") == "oct":
                continue  # encryption keys, and shared secrets (a JWKS is public), are never signing keys here
            try:
                key = jwt.PyJWK(item)
            except jwt.PyJWTError as exc:
                logger.warning("skipping a signing key of %s (kid %r): %s", self.issuer, item.get("kid"), exc)
                continue
            declared = item.get("alg")
            keys[str(item.get("kid", ""))] = SigningKey(key, str(declared) if declared is not None else None)
        return keys

    async def _discover(self, client: httpx2.AsyncClient) -> str:
        """The issuer's `jwks_uri`: RFC 8414 metadata first, then OpenID Connect discovery."""
        base = self.issuer.rstrip("/")
        failures: list[str] = []
        for url in (f"{base}/.well-known/oauth-authorization-server", f"{base}/.well-known/openid-configuration"):
            try:
                document = await _get_json(client, url)
            except httpx2.TransportError as exc:  # not reached at all: the same for the other document
                hint = "MCP_OAUTH_CA_CERT, the CA that issued its certificate" if _is_certificate(exc) else "the URL"
                raise ValueError(f"unable to reach {url}: {exc}\nhint: check {hint}") from None
            except (httpx2.HTTPError, ValueError) as exc:
                failures.append(f"{url}: {exc}")
                continue
            if isinstance(document, dict) and isinstance(document.get("jwks_uri"), str):
                if document.get("issuer") != self.issuer:
                    raise ValueError(f"{url} names the issuer {document.get('issuer')!r}, not {self.issuer}")
                self._jwks_url = document["jwks_uri"]
                return self._jwks_url
            failures.append(f"{url}: no jwks_uri")
        raise ValueError(
            f"{self.issuer} publishes no metadata with a jwks_uri ({'; '.join(failures)}): set MCP_OAUTH_JWKS_URL"
        )


def _is_certificate(exc: BaseException) -> bool:
    """A TLS failure because the peer's certificate did not verify, anywhere in the exception's causes."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return False


def _only(keys: dict[str, SigningKey]) -> SigningKey | None:
    """A token without `kid` is accepted only when the issuer publishes a single key."""
    return next(iter(keys.values())) if len(keys) == 1 else None


async def _get_json(client: httpx2.AsyncClient, url: str) -> Any:
    response = await client.get(url, headers={"accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > _MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
    return response.json()


def _scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    """`scope` (RFC 9068: space-separated) or `scp` (a list, as some issuers write it)."""
    raw = claims.get("scope", claims.get("scp", ""))
    items = raw.split() if isinstance(raw, str) else [str(item) for item in raw] if isinstance(raw, list) else []
    return tuple(items)


def metadata_url(settings: Settings) -> str:
    """Where the metadata of the resource `<public url>/mcp` lives (RFC 9728 section 3.1: the path suffixed)."""
    return f"{settings.public_url}{METADATA_PATH}/mcp"


def resource_metadata(settings: Settings) -> dict[str, Any]:
    """The protected resource metadata document (RFC 9728 section 2)."""
    return {
        "resource": settings.resource,
        "authorization_servers": [settings.oauth_issuer],
        "scopes_supported": [*SCOPES, *(f"{SCHEMA_SCOPE_PREFIX}{group}" for group, _ in settings.oauth_schema_scopes)],
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": list(settings.oauth_algorithms),
        "resource_name": "pgmcp (read-only PostgreSQL)",
    }


__all__ = [
    "METADATA_PATH",
    "TokenRefused",
    "Verifier",
    "looks_like_jwt",
    "metadata_url",
    "resource_metadata",
]
