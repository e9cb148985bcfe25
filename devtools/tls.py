"""A throwaway certificate authority and server certificates for tests that need TLS: an external
PostgreSQL with a CA of its own, a wrong CA to be refused, a certificate for the wrong name. Written with
the `cryptography` package (in the dev lock), so no `openssl` binary is needed."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and key, in memory; `ca.crt` is what a client's `sslrootcert` points at."""

    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "pgstack test CA", days: int = 30) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name, certificate, key)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem())
        path.chmod(0o644)
        return path

    def issue(self, names: list[str], days: int = 30, *, client: bool = False) -> tuple[bytes, bytes]:
        """A server certificate for `names` (DNS names and IP addresses): (certificate PEM, key PEM). With
        `client`, a client certificate instead: its common name `names[0]` is the PostgreSQL role it logs in as."""
        key = ec.generate_private_key(ec.SECP256R1())
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass(frozen=True)
class ServerFiles:
    """Where `write_server_files` put the CA certificate, the server's certificate and its key."""

    ca_crt: Path
    server_crt: Path
    server_key: Path


def write_server_files(
    directory: Path, ca: CertificateAuthority, names: list[str], *, owner: tuple[int, int] | None = None
) -> ServerFiles:
    """Write ca.crt, server.crt and server.key into `directory`. The key is 0600 (PostgreSQL refuses a key
    others can read); give `owner` (uid, gid) when the server runs as another user (999 in the images),
    which needs root."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = ca.issue(names)
    files = ServerFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    ca.write(files.ca_crt)
    files.server_crt.write_bytes(certificate)
    files.server_crt.chmod(0o644)
    files.server_key.write_bytes(key)
    files.server_key.chmod(0o600)
    if owner is not None:
        for path in (files.ca_crt, files.server_crt, files.server_key):
            os.chown(path, *owner)
    return files
