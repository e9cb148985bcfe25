"""TLS in the bundled stack: postgres serves TLS only, with a certificate of the stack's own CA for the names
`postgres`, `localhost` and `127.0.0.1`; a plaintext TCP login is refused whatever the password; mcp and
backup connect with sslmode=verify-full (and every other sslmode but disable works); `make rotate-tls`
gives postgres a new certificate, and a new CA, with no restart. Checked on the server's side: its log,
pg_stat_ssl, the postmaster's start time."""

from __future__ import annotations

import re
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from devtools.tls import CertificateAuthority
from tests.fixtures.stack import REPO, Stack, StackError

# The SSLRequest message: length 8, code 80877103 (PostgreSQL's protocol, "SSL Session Encryption").
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def served_certificate(port: int) -> x509.Certificate:
    """The certificate postgres presents on 127.0.0.1:PORT, read off the TLS handshake, unverified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(SSL_REQUEST)
        assert raw.recv(1) == b"S", "postgres refused the SSLRequest: it does not serve TLS"
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def connect(stack: Stack, role: str = "postgres", **options: str) -> psycopg.Connection:
    return psycopg.connect(stack.dsn(role), **options)


def postmaster_start(stack: Stack) -> str:
    with connect(stack, sslmode="verify-full", sslrootcert=str(stack.secrets_dir / "ca.crt")) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return str(row[0])


def make(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_server_certificate_verifies_with_the_stacks_ca(stack: Stack, host: str) -> None:
    ca = str(stack.secrets_dir / "ca.crt")
    with psycopg.connect(
        stack.dsn().replace("host=127.0.0.1", f"host={host}"), sslmode="verify-full", sslrootcert=ca
    ) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None and row[0] is True and str(row[1]).startswith("TLSv1."), row
    names = served_certificate(stack.pg_port).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert set(names.value.get_values_for_type(x509.DNSName)) == {
        "postgres",
        "postgres-standby",
        "pgbouncer",
        "localhost",
    }
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_another_ca_does_not_verify_the_server(stack: Stack, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.crt"
    CertificateAuthority.create("not the stack's CA").write(other)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(stack, sslmode="verify-full", sslrootcert=str(other))


def test_a_plaintext_tcp_login_is_refused(stack: Stack) -> None:
    """The right password over plaintext TCP: refused by pg_hba.conf, and the server's log says so."""
    marker = f"plaintext_probe_{time.monotonic_ns()}"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(stack, sslmode="disable", application_name=marker)
    logs = stack.compose("logs", "--no-log-prefix", "postgres").stdout
    assert (
        'pg_hba.conf rejects connection for host "' in logs and 'user "postgres", database "app", no encryption' in logs
    )
    with connect(stack, sslmode="require") as conn:
        sessions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [marker]
        ).fetchone()
    assert sessions == (0,)


def test_the_mcp_servers_connections_are_tls(stack: Stack) -> None:
    with connect(stack, sslmode="require") as conn:
        rows = conn.execute(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'mcp_reader'"
        ).fetchall()
    assert rows and all(ssl_on for (ssl_on,) in rows), rows
    env = stack.exec("mcp", "env").stdout
    assert "MCP_DATABASE_SSLMODE=verify-full" in env and "MCP_DATABASE_SSLROOTCERT=/run/secrets/tls_ca_cert" in env


def test_the_backup_sidecar_connects_with_verify_full(stack: Stack) -> None:
    """Through the sidecar's own settings and connect(): the server reports the session as TLS."""
    script = (
        "import os; from pgbackup.config import Settings; from pgbackup.db import connect, scalar;"
        "s = Settings.from_env(os.environ); c = connect(s.target);"
        "print(s.target.get('sslmode'), scalar(c, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'))"
    )
    assert stack.exec("backup", "python", "-c", script).stdout.split() == ["verify-full", "True"]


@pytest.fixture
def recreate_mcp(stack: Stack) -> Iterator[Callable[[str], None]]:
    """Recreate mcp with another MCP_DATABASE_SSLMODE; the stack's own comes back afterwards."""

    def recreate(sslmode: str) -> None:
        subprocess.run(
            [str(REPO / "ops" / "compose.sh"), "up", "-d", "--no-deps", "--force-recreate", "mcp"],
            env={**stack.env(), "MCP_DATABASE_SSLMODE": sslmode},
            check=True,
            capture_output=True,
            timeout=300,
        )

    yield recreate
    stack.compose("up", "-d", "--no-deps", "--force-recreate", "mcp")
    stack.wait_healthy("mcp")


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "prefer"])
def test_every_sslmode_but_disable_works_for_mcp(
    stack: Stack, recreate_mcp: Callable[[str], None], sslmode: str
) -> None:
    """The bug: MCP_DATABASE_SSLMODE=require broke the bundled stack."""
    recreate_mcp(sslmode)
    stack.wait_healthy("mcp")
    assert f"MCP_DATABASE_SSLMODE={sslmode}" in stack.exec("mcp", "env").stdout


def test_sslmode_disable_stops_mcp_with_the_reason(stack: Stack, recreate_mcp: Callable[[str], None]) -> None:
    recreate_mcp("disable")
    with pytest.raises(StackError):
        stack.wait_healthy("mcp", timeout=90)
    logs = stack.compose("logs", "--no-log-prefix", "mcp").stdout
    assert "no encryption" in logs, logs[-3000:]
    assert "set MCP_DATABASE_SSLMODE=verify-full (or require)" in logs, logs[-3000:]


def test_the_readmes_host_side_psql_connects_with_verify_full(stack: Stack) -> None:
    """The README's psql command (Connecting), as a user runs it on the host: TLS, verified with ca.crt."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Connecting", 1)[1].split("\n## ", 1)[0]
    [command] = [line for line in re.findall(r"```bash\n(.*?)```", section, flags=re.S) if "psql" in line]
    assert "sslmode=verify-full sslrootcert=compose/secrets/ca.crt" in command
    command = command.replace("port=5432", f"port={stack.pg_port}").replace("compose/secrets/", f"{stack.secrets_dir}/")
    result = subprocess.run(
        ["bash", "-Eeuo", "pipefail", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_rotate_tls_serves_a_new_certificate_without_a_restart(stack: Stack) -> None:
    started = postmaster_start(stack)
    before = served_certificate(stack.pg_port)
    result = make(stack, "rotate-tls")
    assert result.returncode == 0, result.stderr
    after = served_certificate(stack.pg_port)
    assert after.serial_number != before.serial_number
    assert after.issuer == before.issuer
    shown = re.search(r"postgres serves the new certificate \(serial=([0-9A-F]+), valid \d+ days\)", result.stderr)
    assert shown and int(shown.group(1), 16) == after.serial_number, result.stderr
    assert postmaster_start(stack) == started
    stack.wait_healthy("postgres", "mcp", "backup")
    assert (stack.secrets_dir / "server.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_rotate_tls_with_a_new_ca(stack: Stack) -> None:
    started = postmaster_start(stack)
    old_ca = (stack.secrets_dir / "ca.crt").read_bytes()
    inode = (stack.secrets_dir / "ca.crt").stat().st_ino
    result = make(stack, "rotate-tls", "CA=1")
    assert result.returncode == 0, result.stderr
    new_ca = (stack.secrets_dir / "ca.crt").read_bytes()
    assert new_ca != old_ca and new_ca.count(b"BEGIN CERTIFICATE") == 1
    assert (stack.secrets_dir / "ca.crt").stat().st_ino == inode, "ca.crt was replaced, not rewritten in place"
    served = served_certificate(stack.pg_port)
    assert served.issuer == x509.load_pem_x509_certificate(new_ca).subject
    assert postmaster_start(stack) == started
    # mcp and backup read the new CA through their bind mounts: new connections verify, no restart
    script = (
        "import os; from pgbackup.config import Settings; from pgbackup.db import connect, scalar;"
        "print(scalar(connect(Settings.from_env(os.environ).target), 'SELECT 1'))"
    )
    assert stack.exec("backup", "python", "-c", script).stdout.strip() == "1"
    stack.compose("restart", "mcp")
    stack.wait_healthy("mcp")
