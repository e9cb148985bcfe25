"""The OAuth 2.1 resource server against a real OpenID provider (oidc-provider under Node 22, started here):
tokens from its client credentials grant call tools through the official SDK client, whose own discovery finds
the provider from the server's 401; the protected resource metadata (RFC 9728); every kind of bad token
refused with the right status and `WWW-Authenticate`; a rotated JWKS picked up; API keys beside tokens."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthToken, ProtectedResourceMetadata

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from devtools.net import free_port
from devtools.oidc_provider import Client as OidcClient
from devtools.oidc_provider import OidcProvider, rsa_jwk
from devtools.tls import CertificateAuthority
from pgmcp.oauth import JWKS_REFRESH_MIN_S
from tests.fast.mcp.raw_http import post, rpc

TEAM = OidcClient("team", "team-secret-" + "x" * 20)
CI = OidcClient("ci", "ci-secret-" + "z" * 20)
OTHER_RESOURCE = "https://other.example.com/mcp"


def resource_server(
    pg: NativePostgres,
    issuer: str,
    port: int,
    *,
    pool: int = 2,
    keys: bool = False,
    settings: dict[str, str] | None = None,
) -> McpServerProcess:
    """A server on `port` taking tokens of `issuer` for its resource `http://127.0.0.1:<port>/mcp`, with a pool
    of `pool` connections, an API key `alice` with `keys`, and `settings` (MCP_* variables) on top."""
    overrides = {"MCP_PUBLIC_URL": f"http://127.0.0.1:{port}", "MCP_OAUTH_ISSUER": issuer,
                 "MCP_POOL_MIN_SIZE": "1", "MCP_POOL_MAX_SIZE": str(pool)}  # fmt: skip
    return start_mcp_process(
        pg,
        keys={"alice": secrets.token_hex(32)} if keys else None,
        port=port,
        overrides={**overrides, **(settings or {})},
    )


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def grouped_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def limited_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(port: int, grouped_port: int, limited_port: int) -> Iterator[OidcProvider]:
    resources = [f"http://127.0.0.1:{number}/mcp" for number in (port, grouped_port, limited_port)]
    with OidcProvider.start(resources=[*resources, OTHER_RESOURCE], clients=[TEAM, CI]) as started:
        yield started


@pytest.fixture(scope="module")
def server(pg: NativePostgres, provider: OidcProvider, port: int) -> Iterator[McpServerProcess]:
    process = resource_server(pg, provider.issuer, port, pool=4, keys=True)
    try:
        yield process
    finally:
        process.cleanup()


def resource(server: McpServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}/mcp"


def metadata_url(server: McpServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}/.well-known/oauth-protected-resource/mcp"


def bearer(server: McpServerProcess, token: str, tool: str = "list_schemas", **arguments: Any) -> tuple[int, str, Any]:
    """A tools/call with `token`: the status, the WWW-Authenticate header and the JSON body."""
    status, headers, body = post(
        server,
        rpc("tools/call", {"name": tool, "arguments": arguments}),
        key=None,
        headers={"Authorization": f"Bearer {token}"},
    )
    return status, headers.get("www-authenticate", ""), json.loads(body)


def claims(provider: OidcProvider, server: McpServerProcess, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": provider.issuer, "sub": "team", "client_id": "team", "aud": resource(server), "iat": now,
            "exp": now + 300, "scope": "pg:read pg:explain", "jti": secrets.token_hex(8)}  # fmt: skip
    return {**base, **changes}


def signed(provider: OidcProvider, payload: dict[str, Any], *, kid: str | None = None) -> str:
    """A token signed with the provider's own current key (what only the provider could have signed)."""
    kid = kid or provider.kid
    return jwt.encode(payload, provider.private_keys[kid], algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


def test_the_protected_resource_metadata_names_the_resource_and_its_authorization_server(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        status, headers, body = post(server, b"", key=None, path=path, method="GET")
        assert status == 200 and headers["content-type"] == "application/json"
        document = json.loads(body)
        ProtectedResourceMetadata.model_validate(document)  # the SDK's own model of RFC 9728 section 2
        assert document["resource"] == resource(server)  # REQUIRED
        assert document["authorization_servers"] == [provider.issuer]
        assert document["scopes_supported"] == ["pg:read", "pg:explain"]
        assert document["bearer_methods_supported"] == ["header"]


def test_a_request_without_credentials_points_at_the_metadata(server: McpServerProcess) -> None:
    status, headers, body = post(server, rpc("tools/list"), key=None)
    assert (status, headers["www-authenticate"]) == (401, f'Bearer resource_metadata="{metadata_url(server)}"')
    message = json.loads(body)["error"]["message"]
    assert message == "missing credentials: send `Authorization: Bearer <an API key or an OAuth access token>`"


class MemoryTokens:
    """The SDK client's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: Any = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, client_info: Any) -> None:
        self.client = client_info


@pytest.mark.anyio
async def test_the_sdk_client_discovers_the_provider_from_a_401_and_calls_tools_with_its_token(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    storage = MemoryTokens()
    auth = ClientCredentialsOAuthProvider(
        server_url=resource(server),
        storage=storage,
        client_id=TEAM.client_id,
        client_secret=TEAM.client_secret,
        scope="pg:read pg:explain",
        issuer=provider.issuer,
    )
    async with create_mcp_http_client(auth=auth) as http:
        async with Client(streamable_http_client(resource(server), http_client=http), cache=None) as client:
            tools = await client.list_tools()
            assert "query" in [tool.name for tool in tools.tools]
            result = await client.call_tool("query", {"sql": "SELECT 40 + 2 AS answer"})
            assert result.structured_content is not None and result.structured_content["rows"] == [[42]]
            explained = await client.call_tool("explain", {"sql": "SELECT 1"})
            assert not explained.is_error
    assert storage.tokens is not None
    token_claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert token_claims["aud"] == resource(server) and token_claims["iss"] == provider.issuer  # RFC 8707 resource
    audit = [json.loads(line) for line in server.log_text().splitlines() if '"oauth:team"' in line]
    assert any(line.get("subject") == "team" and line.get("client_id") == "team" for line in audit)


def test_an_api_key_still_works_beside_oauth(server: McpServerProcess) -> None:
    status, _, body = bearer(server, server.keys["alice"])
    assert status == 200 and not body["result"].get("isError"), body


def refused(
    server: McpServerProcess, token: str, status: int, error: str, message: str, *, tool: str = "list_schemas"
) -> str:
    got, challenge, body = bearer(server, token, tool, **({"sql": "SELECT 1"} if tool != "list_schemas" else {}))
    assert got == status, body
    assert body["error"]["message"].startswith(message), body["error"]["message"]
    assert challenge.startswith(f'Bearer resource_metadata="{metadata_url(server)}", error="{error}"'), challenge
    return challenge


def test_a_token_for_another_audience_is_refused(server: McpServerProcess, provider: OidcProvider) -> None:
    token = provider.token("team", resource=OTHER_RESOURCE)
    refused(server, token, 401, "invalid_token", "the access token was not issued for this server")


def test_a_token_of_another_issuer_is_refused(server: McpServerProcess, provider: OidcProvider, port: int) -> None:
    with OidcProvider.start(resources=[resource(server)], clients=[TEAM]) as other:
        token = other.token("team", resource=resource(server))
    refused(server, token, 401, "invalid_token", f"the access token was not issued by {provider.issuer}")


def test_an_expired_token_is_refused(server: McpServerProcess, provider: OidcProvider) -> None:
    now = int(time.time())
    token = signed(provider, claims(provider, server, iat=now - 600, exp=now - 120))
    refused(server, token, 401, "invalid_token", "the access token has expired: get a new one")


def test_a_token_signed_with_a_key_the_issuer_does_not_publish_is_refused(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    _, intruder = rsa_jwk("intruder")
    payload = claims(provider, server)
    token = jwt.encode(payload, intruder, algorithm="RS256", headers={"kid": "intruder"})
    refused(server, token, 401, "invalid_token", "the access token is signed with a key ('intruder')")
    # the intruder reusing the provider's kid: the signature does not verify
    token = jwt.encode(payload, intruder, algorithm="RS256", headers={"kid": provider.kid})
    refused(server, token, 401, "invalid_token", "the access token's signature does not verify")


def test_alg_none_and_a_public_key_used_as_an_hmac_secret_are_refused(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    payload = claims(provider, server)
    unsigned = jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]  # PyJWT takes None for none
    refused(server, unsigned, 401, "invalid_token", "the access token is signed with alg 'none'")
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": provider.kid}).encode()).decode()
    body = jwt.utils.base64url_encode(json.dumps(payload).encode()).decode()
    forged = f"{header}.{body}.{jwt.utils.base64url_encode(b'x' * 32).decode()}"
    refused(server, forged, 401, "invalid_token", "the access token is signed with alg 'HS256'")


def test_a_tampered_payload_is_refused(server: McpServerProcess, provider: OidcProvider) -> None:
    token = provider.token("team", resource=resource(server), scope="pg:read")
    header, payload, signature = token.split(".")
    decoded = json.loads(jwt.utils.base64url_decode(payload))
    decoded["scope"] = "pg:read pg:explain"  # a read-only token giving itself explain
    tampered = ".".join([header, jwt.utils.base64url_encode(json.dumps(decoded).encode()).decode(), signature])
    refused(server, tampered, 401, "invalid_token", "the access token's signature does not verify", tool="explain")


def test_a_token_lacking_the_scope_is_refused_with_the_scope_it_needs(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    read_only = provider.token("team", resource=resource(server), scope="pg:read")
    challenge = refused(
        server, read_only, 403, "insufficient_scope", "the access token lacks the scope pg:explain", tool="explain"
    )
    assert 'scope="pg:explain"' in challenge
    status, _, body = bearer(server, read_only, "query", sql="SELECT 1")
    assert status == 200 and not body["result"].get("isError")
    nothing_of_ours = provider.token("team", resource=resource(server), scope="other:scope")
    challenge = refused(server, nothing_of_ours, 403, "insufficient_scope", "the access token grants none")
    assert 'scope="pg:read"' in challenge


def test_a_rotated_jwks_is_picked_up_and_the_old_key_stops_working(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    before = provider.token("team", resource=resource(server))
    assert bearer(server, before)[0] == 200
    provider.rotate()
    after = provider.token("team", resource=resource(server))
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    # An unknown kid fetches the keys again, at most every JWKS_REFRESH_MIN_S, in each worker process (the
    # server runs one per CPU, each with its own cache): settled when every call, on whichever worker, takes the
    # new key and refuses the old one.
    deadline = time.monotonic() + 2 * JWKS_REFRESH_MIN_S + 20
    streak = 0
    while streak < 10:
        settled = bearer(server, after)[0] == 200 and bearer(server, before)[0] == 401
        streak = streak + 1 if settled else 0
        assert time.monotonic() < deadline, "the rotated key was not picked up by every worker"
        time.sleep(0.05 if settled else 0.5)
    refused(server, before, 401, "invalid_token", "the access token is signed with a key")


def test_the_jwks_cache_refetches_no_more_often_than_its_minimum(
    server: McpServerProcess, provider: OidcProvider
) -> None:
    """Made-up kids (an attacker's stream of them) cost the issuer at most one fetch per JWKS_REFRESH_MIN_S."""
    assert bearer(server, provider.token("team", resource=resource(server)))[0] == 200
    _, intruder = rsa_jwk("x")
    fetched_before = server.log_text().count("fetched 1 signing keys of")
    for index in range(20):
        token = jwt.encode(claims(provider, server), intruder, algorithm="RS256", headers={"kid": f"made-up-{index}"})
        assert bearer(server, token)[0] == 401
    assert server.log_text().count("fetched 1 signing keys of") - fetched_before <= 1


@pytest.fixture(scope="module")
def grouped(pg: NativePostgres, provider: OidcProvider, grouped_port: int) -> Iterator[McpServerProcess]:
    """A server with schema groups as scopes: `pg:schema:sales` reads shop, and only shop."""
    process = resource_server(pg, provider.issuer, grouped_port, settings={"MCP_OAUTH_SCHEMA_SCOPES": "sales=shop"})
    try:
        yield process
    finally:
        process.cleanup()


def test_a_schema_group_scope_limits_a_token_to_its_schemas(grouped: McpServerProcess, provider: OidcProvider) -> None:
    status, _, body = post(grouped, b"", key=None, path="/.well-known/oauth-protected-resource/mcp", method="GET")
    assert json.loads(body)["scopes_supported"] == ["pg:read", "pg:explain", "pg:schema:sales"]
    sales = provider.token("team", resource=resource(grouped), scope="pg:read pg:schema:sales")
    status, _, body = bearer(grouped, sales)
    assert status == 200 and [item["name"] for item in body["result"]["structuredContent"]["schemas"]] == ["shop"]
    status, _, body = bearer(grouped, sales, "query", sql="SELECT count(*) FROM orders")  # search_path: shop
    assert body["result"]["structuredContent"]["row_count"] == 1, body
    _, _, body = bearer(grouped, sales, "query", sql="SELECT * FROM public.anything")
    assert "rule: schema_scope" in body["result"]["content"][0]["text"]
    no_group = provider.token("team", resource=resource(grouped), scope="pg:read")
    status, challenge, body = bearer(grouped, no_group)
    assert status == 403 and 'error="insufficient_scope", scope="pg:schema:sales"' in challenge
    assert body["error"]["message"].startswith("the access token grants no schema group of this server")


def test_an_issuer_on_https_with_a_private_ca_is_trusted_only_through_mcp_oauth_ca_cert(pg: NativePostgres) -> None:
    """An authorization server whose certificate a private CA issued (a team's own IdP): with MCP_OAUTH_CA_CERT
    the server fetches its keys over HTTPS and takes its tokens; with the system's roots only it cannot fetch
    them, answers 503 with Retry-After saying so, and logs the certificate failure."""
    ca = CertificateAuthority.create("team IdP CA")
    ports = {"trusting": free_port(), "untrusting": free_port()}
    resources = [f"http://127.0.0.1:{port}/mcp" for port in ports.values()]
    with OidcProvider.start(resources=resources, clients=[TEAM], ca=ca) as idp:
        assert idp.issuer.startswith("https://127.0.0.1:")
        ca_file = ca.write(idp.workdir / "idp-ca.crt")
        servers: dict[str, McpServerProcess] = {}
        try:
            for name, port in ports.items():
                trust = {"MCP_OAUTH_CA_CERT": str(ca_file)} if name == "trusting" else {}
                servers[name] = resource_server(pg, idp.issuer, port, keys=True, settings=trust)
            trusting, untrusting = servers["trusting"], servers["untrusting"]
            status, _, body = bearer(trusting, idp.token("team", resource=resource(trusting)))
            assert status == 200 and not body["result"]["isError"], body
            status, headers, raw = post(
                untrusting,
                rpc("tools/call", {"name": "list_schemas", "arguments": {}}),
                key=None,
                headers={"Authorization": f"Bearer {idp.token('team', resource=resource(untrusting))}"},
            )
            body = json.loads(raw)
            assert status == 503 and headers["retry-after"] == "30", (status, headers)
            assert body["error"]["message"].startswith(f"this server cannot fetch the signing keys of {idp.issuer}")
            log = untrusting.log_text()
            assert (
                f"unable to reach {idp.issuer}/.well-known/oauth-authorization-server: [SSL: CERTIFICATE_VERIFY_FAILED]"
                in log
            )
            assert "hint: check MCP_OAUTH_CA_CERT, the CA that issued its certificate" in log
        finally:
            for server in servers.values():
                server.cleanup()


def test_the_per_caller_limit_counts_a_tokens_client_and_subject(
    pg: NativePostgres, provider: OidcProvider, limited_port: int
) -> None:
    """MCP_MAX_CONCURRENCY_PER_KEY=2: a third call in flight of one client's tokens gets 429 naming
    `oauth:<client>/<subject>` (`oauth:team` when they are the same), while another client's token, a caller
    of its own, is not held back."""
    server = resource_server(
        pg, provider.issuer, limited_port, pool=6, settings={"MCP_MAX_CONCURRENCY_PER_KEY": "2", "MCP_WORKERS": "1"}
    )
    try:
        team = provider.token("team", resource=resource(server), scope="pg:read")
        ci = provider.token("ci", resource=resource(server), scope="pg:read")
        calls = [team] * 4 + [ci] * 2
        with ThreadPoolExecutor(len(calls)) as pool:
            answers = list(pool.map(lambda token: bearer(server, token, "query", sql="SELECT pg_sleep(2.5)"), calls))
        team_statuses = sorted(status for status, _, _ in answers[:4])
        assert team_statuses == [200, 200, 429, 429], answers
        assert [status for status, _, _ in answers[4:]] == [200, 200], answers[4:]
        refused = next(body for status, _, body in answers[:4] if status == 429)
        assert refused["error"]["message"].startswith(
            "too many concurrent requests for 'oauth:team' (limit 2)"
        )  # sub == client id
    finally:
        server.cleanup()
