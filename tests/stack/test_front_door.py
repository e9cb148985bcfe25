"""The TLS front door (`make up PROFILE=tls`, compose/tls.yaml): Caddy terminates TLS with a certificate the
stack's CA issued on first use, the MCP endpoint answers over HTTPS to a client that trusts that CA (the
official SDK client), plain HTTP is redirected to MCP_PUBLIC_URL, a wrong Host is refused, HSTS is sent, and
the MCP container publishes no port. Keys made with `make api-key` on the host work through it at once (the
container reads the bind-mounted key file again by itself). OAuth beside the keys: the team's authorization
server (oidc-provider) runs as a container of the stack with a certificate of its own CA, mounted into mcp
by the README's override; its tokens call tools through the front door."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import ProtectedResourceMetadata

from devtools.net import free_port
from devtools.oidc_provider import Client as OidcClient
from devtools.oidc_provider import OidcProvider, installed
from devtools.paths import REPO
from devtools.tls import CertificateAuthority
from tests.fast.clients.helpers import blocks, install_clients, only_block, replace_documented, run_bash
from tests.fixtures.stack import Stack, start_stack

pytestmark = pytest.mark.stack


IDP_CA_SECTION = "### An authorization server with a certificate of your own CA"
IDP = OidcClient("team", "team-secret-" + "y" * 20)
IDP_PORT = 4443  # the container's; this host reaches it on a free loopback port


def idp_override(provider: OidcProvider) -> str:
    """The README's override for an authorization server with its own CA, its CA file where the provider's
    files are, plus the provider itself: oidc-provider under the pinned Node in a container on `mcp-edge`,
    as `https://oidc:4443` with a certificate from that CA, published on 127.0.0.1 for the test's token requests."""
    documented = replace_documented(
        only_block(IDP_CA_SECTION, "yaml"), {"./secrets/idp-ca.crt": str(provider.workdir / "idp-ca.crt")}
    )
    node, tree = installed()
    ready = (
        f"fetch('{provider.issuer}/.well-known/openid-configuration')"
        ".then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
    )
    service = {
        "image": "pgstack/mcp:${STACK_VERSION:-dev}",  # a Debian with glibc and libstdc++, which Node needs
        "user": "999:999",
        "read_only": True,
        "entrypoint": ["/opt/node/bin/node", "/opt/oidc/provider.mjs"],
        "environment": {**provider.environment(Path("/run/oidc")), "NODE_EXTRA_CA_CERTS": "/run/oidc/idp-ca.crt"},
        "volumes": [f"{node.parent.parent}:/opt/node:ro", f"{tree}:/opt/oidc:ro", f"{provider.workdir}:/run/oidc:ro"],
        "networks": ["mcp-edge"],
        "ports": [f"127.0.0.1:{provider.port}:{IDP_PORT}"],
        "healthcheck": {"test": ["CMD", "/opt/node/bin/node", "-e", ready], "interval": "2s", "retries": 30},
    }
    override = yaml.safe_load(documented)
    override["services"]["oidc"] = service
    return str(yaml.safe_dump(override, sort_keys=False))


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    """The team's authorization server, its files ready for the container `tls_stack` runs it in."""
    tls_port = free_port()
    provider = OidcProvider.prepare(
        resources=[f"https://localhost:{tls_port}/mcp"],
        clients=[IDP],
        ca=CertificateAuthority.create("team IdP CA"),
        name="oidc",
        listen_port=IDP_PORT,
    )
    assert provider.ca is not None
    provider.ca.write(provider.workdir / "idp-ca.crt")
    try:
        yield provider
    finally:
        provider.cleanup()


@pytest.fixture(scope="module")
def tls_stack(idp: OidcProvider) -> Iterator[Stack]:
    """The front door with API keys and OAuth together, its authorization server a container of the stack
    with a certificate of its own CA (the README's override)."""
    override = idp.workdir / "compose.override.yaml"
    override.write_text(idp_override(idp))
    env = {
        "MCP_TLS_PORT": str(urlsplit(idp.resources[0]).port),
        "PGSTACK_OVERRIDE_FILE": str(override),
        "MCP_OAUTH_ISSUER": idp.issuer,
        "MCP_OAUTH_CA_CERT": "/run/secrets/oauth_ca_cert",
    }
    with start_stack(profile="tls", env=env) as running:
        running.up("oidc")
        yield running


def tls_port(stack: Stack) -> int:
    return int(stack.extra_env["MCP_TLS_PORT"])


def public_url(stack: Stack) -> str:
    return f"https://localhost:{tls_port(stack)}"


def metadata_url(stack: Stack) -> str:
    return f"{public_url(stack)}/.well-known/oauth-protected-resource/mcp"


def trusting(stack: Stack) -> ssl.SSLContext:
    """A client context that trusts the stack's CA (what the README tells people to do) and nothing else."""
    return ssl.create_default_context(cafile=str(stack.secrets_dir / "ca.crt"))


def https(
    stack: Stack, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", tls_port(stack), timeout=30, context=trusting(stack))
    # connect to the loopback port, but check the certificate for `localhost`, the name of MCP_PUBLIC_URL
    connection.sock = trusting(stack).wrap_socket(
        socket.create_connection(("127.0.0.1", tls_port(stack)), timeout=30), server_hostname="localhost"
    )
    try:
        all_headers = {"Host": f"localhost:{tls_port(stack)}", **(headers or {})}
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def mcp_body(method: str, params: dict[str, object] | None = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()


def mcp_headers(key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }


@pytest.mark.anyio
async def test_the_sdk_client_calls_tools_over_https_trusting_the_stacks_ca(tls_stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {tls_stack.api_key}"}
    async with httpx2.AsyncClient(verify=trusting(tls_stack), headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{public_url(tls_stack)}/mcp", http_client=http)
        async with Client(transport, cache=None) as client:
            result = await client.call_tool("query", {"sql": "SELECT count(*) AS orders FROM shop.orders"})
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["rows"] == [[tls_stack.demo_orders]]


def test_https_sends_hsts_and_a_client_without_the_ca_is_refused(tls_stack: Stack) -> None:
    status, headers, _ = https(tls_stack, "POST", "/mcp", mcp_body("tools/list"), mcp_headers(tls_stack.api_key))
    assert status == 200 and headers["strict-transport-security"] == "max-age=31536000"
    assert "server" not in headers
    untrusting = ssl.create_default_context()  # the system's roots only: the stack's CA is not among them
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", tls_port(tls_stack)), timeout=10) as raw:
            untrusting.wrap_socket(raw, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", tls_port(tls_stack)), timeout=10) as raw:
        with trusting(tls_stack).wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.3"


@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/healthz", "/", "/mcp/../metrics", "/%6detrics"])
def test_only_the_endpoint_and_its_metadata_are_public(tls_stack: Stack, path: str) -> None:
    """/metrics carries key names as labels and /readyz the database's state: they stay on the stack's
    network (Prometheus and the load balancer reach them there), and the front door answers 404."""
    status, headers, body = https(tls_stack, "GET", path)
    assert status == 404 and headers["strict-transport-security"] == "max-age=31536000"
    assert body == b"not found: this address serves the MCP endpoint at /mcp"
    inside = tls_stack.container("mcp").exec_run(
        [
            "python",
            "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/metrics').read().decode())",
        ]
    )
    assert inside.exit_code == 0 and b"pgmcp_api_key_last_used_timestamp_seconds" in inside.output


def test_plain_http_is_redirected_to_the_public_url(tls_stack: Stack) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", tls_stack.mcp_port, timeout=10)
    connection.request("POST", "/mcp?x=1", body=b"{}", headers={"Host": f"127.0.0.1:{tls_stack.mcp_port}"})
    response = connection.getresponse()
    assert response.status == 308  # permanent, and the method and body are kept
    assert response.getheader("location") == f"{public_url(tls_stack)}/mcp?x=1"
    connection.close()


def test_a_wrong_host_is_refused_through_the_front_door(tls_stack: Stack) -> None:
    status, _, body = https(
        tls_stack, "POST", "/mcp", mcp_body("tools/list"), {**mcp_headers(tls_stack.api_key), "Host": "evil.example"}
    )
    assert status == 421
    assert "Host header 'evil.example' is not accepted" in json.loads(body)["error"]["message"]


def test_only_the_front_door_publishes_ports_and_only_on_loopback(tls_stack: Stack) -> None:
    mcp_ports = tls_stack.container("mcp").attrs["NetworkSettings"]["Ports"]
    assert all(not bindings for bindings in mcp_ports.values()), mcp_ports
    caddy_ports = tls_stack.container("caddy").attrs["NetworkSettings"]["Ports"]
    published = {
        port: [binding["HostIp"] for binding in bindings] for port, bindings in caddy_ports.items() if bindings
    }
    assert set(published) == {"8080/tcp", "8443/tcp"} and all(ips == ["127.0.0.1"] for ips in published.values())


def test_publishing_beyond_loopback_without_tls_is_refused(tls_stack: Stack) -> None:
    env = {**tls_stack.env(), "PROFILE": "", "MCP_PUBLISH_ADDRESS": "0.0.0.0"}
    result = subprocess.run(
        [str(REPO / "ops" / "compose.sh"), "config", "--quiet"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "MCP_PUBLISH_ADDRESS=0.0.0.0 would publish the MCP endpoint beyond this machine without TLS" in result.stderr


def test_a_key_made_on_the_host_works_through_the_front_door_at_once(tls_stack: Stack) -> None:
    env = {**os.environ, "SECRETS_DIR": str(tls_stack.secrets_dir), "SCOPES": "query", "MAX_ROWS": "2"}
    created = subprocess.run(
        [str(REPO / "ops" / "api-keys.sh"), "create", "team-laptop"], env=env, capture_output=True, text=True,
        check=False, timeout=60)  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    keys_file = Path(tls_stack.secrets_dir) / "mcp_api_keys"
    assert secret not in keys_file.read_text()
    call = mcp_body("tools/call", {"name": "query", "arguments": {"sql": "SELECT g FROM generate_series(1, 5) g"}})
    deadline = time.monotonic() + 20
    while True:
        status, _, body = https(tls_stack, "POST", "/mcp", call, mcp_headers(secret))
        if status == 200:
            break
        assert time.monotonic() < deadline, f"the container did not pick up the new key: {status} {body!r}"
        time.sleep(0.5)
    assert json.loads(body)["result"]["structuredContent"]["row_count"] == 2
    listed = subprocess.run(
        [str(REPO / "ops" / "api-keys.sh"), "list"], env=tls_stack.env(), capture_output=True, text=True,
        check=False, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["team-laptop"][7].startswith("20"), listed  # read from the replica, behind the front door
    assert "last use: as the server counted it" in listed.stderr
    status, _, body = https(
        tls_stack, "POST", "/mcp", mcp_body("tools/call", {"name": "explain", "arguments": {"sql": "SELECT 1"}}),
        mcp_headers(secret))  # fmt: skip
    assert status == 403


def test_claude_code_connects_through_the_front_door_as_the_remote_section_says(
    tls_stack: Stack, tmp_path: Path
) -> None:
    """The README's Claude Code lines with the remote section's values: the HTTPS URL, a key from `make api-key`,
    and the stack's CA for Node (NODE_EXTRA_CA_CERTS)."""
    remote = only_block("## Remote access: HTTPS, API keys, OAuth", "bash")
    assert "NODE_EXTRA_CA_CERTS=" in remote and "PGMCP_URL=https://" in remote
    env = {**os.environ, "SECRETS_DIR": str(tls_stack.secrets_dir)}
    created = subprocess.run(
        [str(REPO / "ops" / "api-keys.sh"), "create", "claude-code"], env=env, capture_output=True, text=True,
        check=False, timeout=60)  # fmt: skip
    assert created.returncode == 0, created.stderr
    url = f"{public_url(tls_stack)}/mcp"
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    clients = install_clients()
    variables = {"PGMCP_URL": url, "PGMCP_API_KEY": created.stdout.strip(),
                 "NODE_EXTRA_CA_CERTS": str(tls_stack.secrets_dir / "ca.crt")}  # fmt: skip
    deadline = time.monotonic() + 30
    while True:  # the container reads the key file again within a second or two
        output = run_bash(only_block("### Claude Code", "bash"), env=clients.environment(home, variables), cwd=project)
        if f"postgres: {url} (HTTP) - ✔ Connected" in output.stdout.splitlines():
            break
        assert time.monotonic() < deadline, output.stdout
        (home / ".claude.json").unlink(missing_ok=True)
        time.sleep(1)
    # without the CA, Node refuses the certificate: the connection fails, it is not downgraded
    (home / ".claude.json").unlink(missing_ok=True)
    untrusting = {**variables, "NODE_EXTRA_CA_CERTS": ""}
    output = run_bash(only_block("### Claude Code", "bash"), env=clients.environment(home, untrusting), cwd=project)
    assert f"postgres: {url} (HTTP) - ✘ Failed to connect" in output.stdout.splitlines(), output.stdout


def test_the_oauth_metadata_passes_the_front_door_and_names_the_public_resource(
    tls_stack: Stack, idp: OidcProvider
) -> None:
    status, headers, body = https(tls_stack, "GET", "/.well-known/oauth-protected-resource/mcp")
    assert status == 200 and headers["content-type"] == "application/json"
    document = json.loads(body)
    ProtectedResourceMetadata.model_validate(document)  # the SDK's own model of RFC 9728 section 2
    assert document["resource"] == f"{public_url(tls_stack)}/mcp"
    assert document["authorization_servers"] == [idp.issuer] == ["https://oidc:4443"]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["scopes_supported"] == ["pg:read", "pg:explain"]
    headers_without_key = {name: value for name, value in mcp_headers("").items() if name != "Authorization"}
    status, headers, _ = https(tls_stack, "POST", "/mcp", mcp_body("tools/list"), headers_without_key)
    assert (status, headers["www-authenticate"]) == (401, f'Bearer resource_metadata="{metadata_url(tls_stack)}"')


@pytest.mark.anyio
async def test_a_token_of_the_teams_authorization_server_calls_tools_through_the_front_door(
    tls_stack: Stack, idp: OidcProvider
) -> None:
    """The mcp container fetches the provider's keys from https://oidc:4443 over `mcp-edge`, trusting the CA
    the override mounted; the token (client credentials, RFC 8707 resource = the public URL) works over HTTPS
    through Caddy, a token without `pg:explain` gets 403 naming it, and the audit log names the caller."""
    resource = f"{public_url(tls_stack)}/mcp"
    token = idp.token(IDP.client_id, resource=resource, scope="pg:read pg:explain")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(verify=trusting(tls_stack), headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(resource, http_client=http), cache=None) as client:
            result = await client.call_tool("query", {"sql": "SELECT count(*) AS orders FROM shop.orders"})
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["rows"] == [[tls_stack.demo_orders]]
            assert not (await client.call_tool("explain", {"sql": "SELECT 1"})).is_error
    read_only = idp.token(IDP.client_id, resource=resource, scope="pg:read")
    explain = mcp_body("tools/call", {"name": "explain", "arguments": {"sql": "SELECT 1"}})
    status, answer, _ = https(tls_stack, "POST", "/mcp", explain, mcp_headers(read_only))
    assert status == 403
    assert answer["www-authenticate"].startswith(
        f'Bearer resource_metadata="{metadata_url(tls_stack)}", error="insufficient_scope"'
    )
    assert 'scope="pg:explain"' in answer["www-authenticate"]
    logs = tls_stack.compose("logs", "--no-log-prefix", "mcp").stdout
    audit = [json.loads(line) for line in logs.splitlines() if '"oauth:team' in line]
    assert any(line.get("subject") == "team" and line.get("client_id") == "team" for line in audit), logs[-2000:]
    assert f"fetched 1 signing keys of {idp.issuer}" in logs


@pytest.mark.parametrize("credential", ["api-key", "oauth-token"])
def test_the_inspector_calls_a_tool_through_the_front_door(
    tls_stack: Stack, idp: OidcProvider, tmp_path: Path, credential: str
) -> None:
    """The README's Inspector CLI call with the remote section's values: the HTTPS URL, the stack's CA for Node,
    and in the header a key (the stack's own) or an access token of the team's authorization server."""
    [call] = [script for script in blocks("### MCP Inspector", "bash") if "tools/call" in script]
    url = f"{public_url(tls_stack)}/mcp"
    bearer = tls_stack.api_key if credential == "api-key" else idp.token(IDP.client_id, resource=url, scope="pg:read")
    clients = install_clients()
    variables = {"PGMCP_URL": url, "PGMCP_API_KEY": bearer,
                 "NODE_EXTRA_CA_CERTS": str(tls_stack.secrets_dir / "ca.crt")}  # fmt: skip
    answer = json.loads(run_bash(call, env=clients.environment(tmp_path, variables), cwd=clients.clients_dir).stdout)
    assert answer["isError"] is False and answer["structuredContent"]["rows"] == [[1]], answer
