"""A real OpenID provider for the OAuth tests: `oidc-provider` (tests/oidc) under the pinned Node 22, with
signing keys this module generates (so a test can also sign tokens the provider never would: expired, from a
key the provider does not publish).

    with OidcProvider.start(resources=["http://127.0.0.1:8080/mcp"], clients=[Client("team", "s3cret")]) as op:
        token = op.client_credentials("team", resource="http://127.0.0.1:8080/mcp", scope="pg:read")
        op.rotate()  # new signing keys, published at the same issuer (a restart of the provider)

`start` runs it here, on a free loopback port (HTTPS with `ca=`: a certificate from that CA). `prepare` only
writes its files, for a container that Compose runs under another name (`https://oidc:4443`): its
`environment()` is the container's, and this host still reaches it on 127.0.0.1, checking the certificate for
the issuer's name.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from devtools import processes
from devtools.net import free_port
from devtools.tls import CertificateAuthority

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


def installed() -> tuple[Path, Path]:
    """The pinned node and the provider's tree with provider.mjs in it (`ops/node.sh oidc`, skipped while current)."""
    result = subprocess.run(
        [str(REPO / "ops" / "node.sh"), "oidc"], stdout=subprocess.PIPE, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"unable to install oidc-provider: ops/node.sh oidc exited with {result.returncode} (its error is above)"
            "\nhint: it needs npm (apt-get install npm) and the npm registry"
        )
    node_home, tree = result.stdout.strip().splitlines()[-2:]
    shutil.copy(REPO / "tests" / "oidc" / "provider.mjs", Path(tree) / "provider.mjs")  # beside its node_modules
    return Path(node_home) / "bin" / "node", Path(tree)


@dataclass
class OidcProvider:
    port: int
    """Where this host reaches the provider: 127.0.0.1:port."""
    resources: list[str]
    clients: list[Client]
    workdir: Path
    token_ttl_s: int = 300
    ca: CertificateAuthority | None = None
    """With a CA: HTTPS, with a certificate for `name` that this CA issued."""
    name: str = "127.0.0.1"
    """The issuer's host name: 127.0.0.1 here, a service name in a container."""
    listen_port: int = 0
    """The port in the issuer (the container's own; here the same as `port`)."""
    private_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0

    @property
    def issuer(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.name}:{self.listen_port or self.port}"

    @classmethod
    def start(
        cls,
        *,
        resources: list[str],
        clients: list[Client],
        token_ttl_s: int = 300,
        ca: CertificateAuthority | None = None,
    ) -> OidcProvider:
        """The provider as a process of this host, on a free loopback port, answering."""
        provider = cls.prepare(resources=resources, clients=clients, token_ttl_s=token_ttl_s, ca=ca)
        provider._launch()
        return provider

    @classmethod
    def prepare(
        cls,
        *,
        resources: list[str],
        clients: list[Client],
        token_ttl_s: int = 300,
        ca: CertificateAuthority | None = None,
        name: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> OidcProvider:
        """The provider's files (keys, certificate) in a new directory, not started."""
        workdir = Path(tempfile.mkdtemp(prefix="pgmcp-oidc-"))
        workdir.chmod(0o755)  # a container's user reads the files (test keys only)
        provider = cls(free_port(), resources, clients, workdir, token_ttl_s, ca, name, listen_port)
        provider._write_keys()
        if ca is not None:
            certificate, key = ca.issue([name])
            (workdir / "tls.crt").write_bytes(certificate)
            (workdir / "tls.key").write_bytes(key)
            (workdir / "tls.key").chmod(0o644)
        return provider

    @property
    def kid(self) -> str:
        return f"op{self.port}-key{self.generation}"

    def _write_keys(self) -> None:
        jwk, key = rsa_jwk(self.kid)
        self.private_keys[self.kid] = key
        jwks = self.workdir / "jwks.json"
        jwks.write_text(json.dumps({"keys": [jwk]}))
        jwks.chmod(0o644)

    def environment(self, files: Path | None = None) -> dict[str, str]:
        """The provider's environment, its files under `files` (where a container mounts `workdir`)."""
        files = files or self.workdir
        env = {
            "ISSUER": self.issuer,
            "HOST": "127.0.0.1" if self.name == "127.0.0.1" else "0.0.0.0",  # noqa: S104 (a container's)
            "PORT": str(self.listen_port or self.port),
            "JWKS_FILE": str(files / "jwks.json"),
            "CLIENTS": json.dumps([client.__dict__ for client in self.clients]),
            "RESOURCES": ",".join(self.resources),
            "TOKEN_TTL": str(self.token_ttl_s),
            "NODE_ENV": "test",
        }
        if self.ca is not None:
            env |= {"TLS_CERT": str(files / "tls.crt"), "TLS_KEY": str(files / "tls.key")}
        return env

    def _launch(self) -> None:
        node, tree = installed()
        env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")}
        log = (self.workdir / f"provider-{self.generation}.log").open("wb")
        self.process = subprocess.Popen(
            [str(node), str(tree / "provider.mjs")],
            env={**env, **self.environment()},
            stdout=log,
            stderr=subprocess.STDOUT,
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

    def request(self, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET (or POST `body`) a URL of the issuer on 127.0.0.1:port, the certificate checked for its name."""
        if not url.startswith(f"{self.issuer}/"):
            raise ValueError(f"{url} is not under the issuer {self.issuer}")
        path = url[len(self.issuer) :]
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        if self.ca is not None:
            context = ssl.create_default_context(cadata=self.ca.pem().decode())
            raw = context.wrap_socket(raw, server_hostname=self.name)
        connection.sock = raw
        try:
            host = self.issuer.split("://", 1)[1]
            connection.request(
                "POST" if body is not None else "GET", path, body=body, headers={"Host": host, **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def metadata(self) -> dict[str, Any]:
        status, body = self.request(f"{self.issuer}/.well-known/openid-configuration")
        if status != 200:
            raise OSError(f"the provider's metadata answered {status}")
        return json.loads(body)  # type: ignore[no-any-return]

    def client_credentials(self, client_id: str, *, resource: str, scope: str) -> dict[str, Any]:
        """The token response of a client credentials grant (RFC 6749 4.4) for `resource` (RFC 8707)."""
        client = next(item for item in self.clients if item.client_id == client_id)
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "resource": resource, "scope": scope})
        basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
        status, answer = self.request(
            self.metadata()["token_endpoint"],
            body.encode(),
            {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            raise RuntimeError(f"token request refused ({status}): {answer.decode(errors='replace')}")
        return json.loads(answer)  # type: ignore[no-any-return]

    def token(self, client_id: str, *, resource: str, scope: str = "pg:read pg:explain") -> str:
        return str(self.client_credentials(client_id, resource=resource, scope=scope)["access_token"])

    def rotate(self) -> None:
        """New signing keys at the same issuer: the provider restarts with only the new key published."""
        self.stop()
        self.generation += 1
        self._write_keys()
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


__all__ = ["Client", "OidcProvider", "installed", "rsa_jwk"]
