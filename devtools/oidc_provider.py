"""A real OpenID provider for the OAuth tests: `oidc-provider` (tests/oidc) under the pinned Node 22, on a free
loopback port, with signing keys this module generates (so a test can also sign tokens the provider never
would: expired, from a key the provider does not publish).

    with OidcProvider.start(resources=["http://127.0.0.1:8080/mcp"], clients=[Client("team", "s3cret")]) as op:
        token = op.client_credentials("team", resource="http://127.0.0.1:8080/mcp", scope="pg:read")
        op.rotate()  # new signing keys, published at the same issuer (a restart of the provider)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from devtools import processes
from devtools.net import free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    scope: str = "pg:read pg:explain pg:schema:sales other:scope"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_jwk(kid: str) -> tuple[dict[str, str], rsa.RSAPrivateKey]:
    """A fresh RSA signing key as a private JWK, and the key itself."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.private_numbers()
    public = numbers.public_numbers
    jwk = {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": _b64(public.n),
        "e": _b64(public.e),
        "d": _b64(numbers.d),
        "p": _b64(numbers.p),
        "q": _b64(numbers.q),
        "dp": _b64(numbers.dmp1),
        "dq": _b64(numbers.dmq1),
        "qi": _b64(numbers.iqmp),
    }
    return jwk, key


def _installed() -> tuple[Path, Path]:
    """The pinned node and the provider's tree (`ops/node.sh oidc`, skipped while current)."""
    result = subprocess.run(
        [str(REPO / "ops" / "node.sh"), "oidc"], stdout=subprocess.PIPE, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"unable to install oidc-provider: ops/node.sh oidc exited with {result.returncode} (its error is above)"
            "\nhint: it needs npm (apt-get install npm) and the npm registry"
        )
    node_home, tree = result.stdout.strip().splitlines()[-2:]
    return Path(node_home) / "bin" / "node", Path(tree)


@dataclass
class OidcProvider:
    port: int
    resources: list[str]
    clients: list[Client]
    workdir: Path
    node: Path
    tree: Path
    token_ttl_s: int = 300
    private_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, *, resources: list[str], clients: list[Client], token_ttl_s: int = 300) -> OidcProvider:
        node, tree = _installed()
        workdir = Path(tempfile.mkdtemp(prefix="pgmcp-oidc-"))
        provider = cls(free_port(), resources, clients, workdir, node, tree, token_ttl_s)
        shutil.copy(REPO / "tests" / "oidc" / "provider.mjs", tree / "provider.mjs")
        provider._launch()
        return provider

    @property
    def kid(self) -> str:
        return f"op{self.port}-key{self.generation}"

    def _launch(self) -> None:
        jwk, key = rsa_jwk(self.kid)
        self.private_keys[self.kid] = key
        jwks = self.workdir / "jwks.json"
        jwks.write_text(json.dumps({"keys": [jwk]}))
        jwks.chmod(0o600)
        env = {
            **{name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")},
            "ISSUER": self.issuer,
            "PORT": str(self.port),
            "JWKS_FILE": str(jwks),
            "CLIENTS": json.dumps([client.__dict__ for client in self.clients]),
            "RESOURCES": ",".join(self.resources),
            "TOKEN_TTL": str(self.token_ttl_s),
            "NODE_ENV": "test",
        }
        log = (self.workdir / f"provider-{self.generation}.log").open("wb")
        self.process = subprocess.Popen(
            [str(self.node), str(self.tree / "provider.mjs")], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                self.metadata()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"oidc-provider did not answer in {START_TIMEOUT_S} s:\n{self.log_text()}"
                    ) from None
                time.sleep(0.1)

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.workdir.glob("provider-*.log")))

    def metadata(self) -> dict[str, Any]:
        url = f"{self.issuer}/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return json.loads(response.read())  # type: ignore[no-any-return]

    def client_credentials(self, client_id: str, *, resource: str, scope: str) -> dict[str, Any]:
        """The token response of a client credentials grant (RFC 6749 4.4) for `resource` (RFC 8707)."""
        client = next(item for item in self.clients if item.client_id == client_id)
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "resource": resource, "scope": scope})
        basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
        request = urllib.request.Request(
            self.metadata()["token_endpoint"],
            data=body.encode(),
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"token request refused ({exc.code}): {exc.read().decode(errors='replace')}") from None

    def token(self, client_id: str, *, resource: str, scope: str = "pg:read pg:explain") -> str:
        return str(self.client_credentials(client_id, resource=resource, scope=scope)["access_token"])

    def rotate(self) -> None:
        """New signing keys at the same issuer: the provider restarts with only the new key published."""
        self.stop()
        self.generation += 1
        self._launch()

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


__all__ = ["Client", "OidcProvider", "rsa_jwk"]
