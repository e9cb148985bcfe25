"""External mode: the stack serves a PostgreSQL it does not own, reached with sslmode=verify-full.

The external servers are containers of the Debian PostgreSQL 18 build, started here and not part of the stack:
`extdb.test` serves TLS with a certificate of its own CA (for `extdb.test` and 127.0.0.1; `wrongname.test` is
another name of the same server, which the certificate does not hold), `plain.test` serves no TLS. They share an
internal network, which the stack joins as its `egress` through a compose.override.yaml (PGSTACK_OVERRIDE_FILE),
as a user's own override would; extdb.test is also published on 127.0.0.1 for the host-side `make reader-role`.

The README's "Use your own PostgreSQL" commands set it up (`make reader-role`, `make external`, `make up`), with
the test's host and CA in place of the example's. Then: the MCP tools read the external data, and the server
writes nothing there (a fingerprint before and after); a backup, the restore drill and `make restore` into a new
database work against it; wrong CA, wrong host name, sslmode=require without TLS, a bad password and a refused
port each end the server's startup with exit status 5 and a message naming the fix, within the startup timeout.
"""

from __future__ import annotations

import os
import re
import secrets as random_tokens
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from devtools.net import free_port
from devtools.paths import REPO
from devtools.tls import CertificateAuthority, write_server_files
from tests.fixtures.stack import Stack, StackError, stack_version
from tests.helpers import wait_until

ADMIN_PASSWORD = "external-admin-" + random_tokens.token_hex(8)
WRITER_PASSWORD = "crm-writer-" + random_tokens.token_hex(8)
STARTUP_TIMEOUT_S = 20
README_SECTION = "## Use your own PostgreSQL"
# what the README's example names, and what the test's servers are called instead
EXAMPLE_HOST = "db.example.com"
EXAMPLE_CA = "/etc/ssl/db-ca.crt"

CRM_SCHEMA = """
CREATE ROLE crm_writer LOGIN PASSWORD '{password}';
CREATE SCHEMA crm AUTHORIZATION crm_writer;
SET ROLE crm_writer;
CREATE TABLE crm.customers (id int PRIMARY KEY, name text NOT NULL, since date NOT NULL);
INSERT INTO crm.customers SELECT i, 'customer ' || i, date '2020-01-01' + i FROM generate_series(1, 250) i;
CREATE TEMP TABLE scratch (i int);
RESET ROLE;
"""

FINGERPRINT_SQL = """
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
  SELECT format('rel %s %s %s %s', c.oid::regclass, c.relkind, c.relowner::regrole, c.relacl)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
    AND n.nspname NOT LIKE 'pg_toast_temp%'
  UNION ALL SELECT format('role %s %s %s %s', rolname, rolsuper, rolconnlimit, rolconfig) FROM pg_roles
  UNION ALL SELECT format('db %s %s', datname, datacl) FROM pg_database
  UNION ALL SELECT format('ns %s %s', nspname, nspacl) FROM pg_namespace
  UNION ALL SELECT format('rows %s', md5(string_agg(t::text, ',' ORDER BY t.id))) FROM crm.customers t
  UNION ALL SELECT format('writes %s', sum(n_tup_ins + n_tup_upd + n_tup_del)) FROM pg_stat_user_tables
) facts(item)
"""


def postgres_image() -> str:
    for line in (REPO / ".state" / "images.env").read_text().splitlines():
        if line.startswith("POSTGRES_IMAGE="):
            return line.split("=", 1)[1]
    raise AssertionError(".state/images.env names no POSTGRES_IMAGE: run ops/images.sh")


def mcp_image() -> str:
    return f"pgstack/mcp:{stack_version()}"


@dataclass
class ExternalServers:
    """The external servers and what a test needs to reach them."""

    network: str  # internal: the stack's egress
    extdb: Any  # docker container, TLS
    plain: Any  # docker container, no TLS
    port: int  # extdb on 127.0.0.1
    ca: Path  # extdb's CA certificate
    authority: CertificateAuthority  # that CA: it also signs client certificates the server accepts
    other_ca: Path  # a CA that signed nothing here

    def psql(self, sql: str, database: str = "app", container: Any = None) -> str:
        """Run SQL as postgres inside the server's container (over its socket): the test's view of the database."""
        result = (container or self.extdb).exec_run(
            ["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", database, "-tAc", sql]
        )
        output = result.output.decode()
        assert result.exit_code == 0, f"psql failed: {output}"
        return output.strip()

    def fingerprint(self) -> str:
        return self.psql(FINGERPRINT_SQL)


def _start_server(client: docker.DockerClient, name: str, network: str, aliases: list[str], tls: Path | None) -> Any:
    command = ["postgres", "-c", "listen_addresses=*"]
    volumes: dict[str, dict[str, str]] = {}
    if tls is not None:
        command += ["-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.crt", "-c", "ssl_key_file=/tls/server.key"]
        volumes[str(tls)] = {"bind": "/tls", "mode": "ro"}
    container = client.containers.create(
        postgres_image(),
        command=command,
        name=name,
        user="999:999",
        environment={"POSTGRES_PASSWORD": ADMIN_PASSWORD, "POSTGRES_DB": "app"},
        volumes=volumes,
        network=network,
        tmpfs={"/var/lib/postgresql": "uid=999,gid=999,mode=0700"},
    )
    client.networks.get(network).disconnect(container)
    client.networks.get(network).connect(container, aliases=aliases)
    return container


def _wait_ready(container: Any) -> None:
    def ready() -> bool:
        container.reload()
        if container.status == "exited":
            raise AssertionError(f"{container.name} exited:\n{container.logs().decode()[-3000:]}")
        probe = ["psql", "--no-psqlrc", "-h", "127.0.0.1", "-U", "postgres", "-d", "app", "-tAc", "SELECT 1"]
        return container.exec_run(probe, environment={"PGPASSWORD": ADMIN_PASSWORD}).exit_code == 0

    wait_until(ready, timeout=120, interval=0.5, what=f"{container.name} to accept TCP queries")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalServers]:
    client = docker.from_env()
    token = random_tokens.token_hex(4)
    directory = tmp_path_factory.mktemp("external")
    tls = directory / "tls"
    ca = CertificateAuthority.create("external server CA")
    files = write_server_files(tls, ca, ["extdb.test", "127.0.0.1"], owner=(999, 999))
    tls.chmod(0o755)
    other_ca = CertificateAuthority.create("some other CA").write(directory / "other-ca.crt")
    network = client.networks.create(f"pgstack-ext-{token}", internal=True)
    edge = client.networks.create(f"pgstack-ext-edge-{token}")
    created: list[Any] = []
    try:
        port = free_port()
        extdb = client.containers.create(
            postgres_image(),
            command=["postgres", "-c", "listen_addresses=*", "-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.crt",
                     "-c", "ssl_key_file=/tls/server.key"],
            name=f"pgstack-extdb-{token}",
            user="999:999",
            environment={"POSTGRES_PASSWORD": ADMIN_PASSWORD, "POSTGRES_DB": "app"},
            volumes={str(tls): {"bind": "/tls", "mode": "ro"}},
            network=edge.name,
            ports={"5432/tcp": ("127.0.0.1", port)},
            tmpfs={"/var/lib/postgresql": "uid=999,gid=999,mode=0700"},
        )  # fmt: skip
        created.append(extdb)
        network.connect(extdb, aliases=["extdb.test", "wrongname.test"])
        plain = _start_server(client, f"pgstack-plaindb-{token}", network.name, ["plain.test"], None)
        created.append(plain)
        for container in (extdb, plain):
            container.start()
        for container in (extdb, plain):
            _wait_ready(container)
        found = ExternalServers(network.name, extdb, plain, port, files.ca_crt, ca, other_ca)
        found.psql(CRM_SCHEMA.format(password=WRITER_PASSWORD))
        yield found
    finally:
        for container in created:
            container.remove(force=True)
        network.remove()
        edge.remove()


def make(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def readme_commands() -> str:
    """The bash block of the README's "Use your own PostgreSQL" section that sets the stack up."""
    text = (REPO / "README.md").read_text()
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    setup = [block for block in blocks if "make external" in block]
    assert len(setup) == 1, "the section has one bash block with make external"
    return setup[0]


@pytest.fixture(scope="module")
def external_stack(servers: ExternalServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    override = tmp_path_factory.mktemp("override") / "compose.override.yaml"
    override.write_text(f"networks:\n  egress:\n    name: {servers.network}\n    external: true\n")
    stack = Stack(
        project=f"pgstack-test-{random_tokens.token_hex(4)}",
        pg_port=free_port(),
        mcp_port=free_port(),
        extra_env={"PGSTACK_OVERRIDE_FILE": str(override), "MCP_STARTUP_TIMEOUT": f"{STARTUP_TIMEOUT_S}s"},
    )
    commands = readme_commands()
    commands = commands.replace(f"postgres@{EXAMPLE_HOST}:5432", f"postgres@127.0.0.1:{servers.port}")
    commands = commands.replace(f"URL=postgresql://{EXAMPLE_HOST}:5432", "URL=postgresql://extdb.test:5432")
    commands = commands.replace(EXAMPLE_CA, str(servers.ca))
    assert EXAMPLE_HOST not in commands, commands
    try:
        result = subprocess.run(
            ["bash", "-Eeuo", "pipefail", "-c", commands],
            cwd=REPO,
            env={**stack.env(), "PGPASSWORD": ADMIN_PASSWORD, "FORCE": "1"},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"the README's commands failed (exit {result.returncode}):\n{commands}\n"
                             f"stdout: {result.stdout[-4000:]}\nstderr: {result.stderr[-4000:]}")  # fmt: skip
        yield stack
    finally:
        stack.down()


@asynccontextmanager
async def mcp_client(stack: Stack) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {stack.api_key}"}) as http:
        async with Client(streamable_http_client(stack.mcp_url, http_client=http), cache=None) as client:
            yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_stack_runs_without_its_own_postgres(external_stack: Stack) -> None:
    services = set(external_stack.compose("ps", "--all", "--services").stdout.split())
    assert services == {"mcp", "backup"}
    config = external_stack.compose("config", "--format", "json").stdout
    assert '"MCP_DATABASE_URL_FILE": "/run/secrets/mcp_database_url"' in config
    assert "MCP_DATABASE_HOST" not in config and "BACKUP_PGHOST" not in config.split('"restore-drill"')[0]
    urls = {name: (external_stack.secrets_dir / name).read_text().strip() for name in ("mcp_database_url",
            "backup_database_url", "restore_database_url")}  # fmt: skip
    tls = "sslmode=verify-full&sslrootcert=/run/secrets/database_ca"
    assert urls == {
        "mcp_database_url": f"postgresql://mcp_reader@extdb.test:5432/app?{tls}",
        "backup_database_url": f"postgresql://backup_operator@extdb.test:5432/app?{tls}",
        "restore_database_url": f"postgresql://postgres@extdb.test:5432/postgres?{tls}",
    }


def test_make_psql_says_the_database_is_yours(external_stack: Stack) -> None:
    result = make(external_stack.env(), "psql")
    assert result.returncode == 2  # make's status for a failed recipe (ops/psql.sh exited 1)
    assert "external mode: the stack runs no postgres" in result.stderr
    assert 'psql "postgresql://postgres@extdb.test:5432/app?sslmode=verify-full' in result.stderr


def test_the_reader_connects_over_verified_tls(external_stack: Stack, servers: ExternalServers) -> None:
    rows = servers.psql(
        "SELECT s.ssl, a.usename FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
        "WHERE a.application_name = 'pgmcp' LIMIT 1"
    )
    assert rows == "t|mcp_reader"


@pytest.mark.anyio
async def test_the_mcp_tools_read_it_and_write_nothing(external_stack: Stack, servers: ExternalServers) -> None:
    def settled() -> str:
        first = servers.fingerprint()
        time.sleep(1.5)  # pg_stat_user_tables: counters of other sessions reach it within a second
        return first if servers.fingerprint() == first else ""

    before = wait_until(settled, timeout=60, interval=0.5, what="a stable fingerprint")
    async with mcp_client(external_stack) as client:
        tables = await client.call_tool("list_tables", {"schema": "crm"})
        count = await client.call_tool("query", {"sql": "SELECT count(*), max(since)::text FROM crm.customers"})
        refused = [
            await client.call_tool("query", {"sql": statement})
            for statement in (
                "INSERT INTO crm.customers VALUES (999, 'x', now())",
                "CREATE TEMP TABLE mcp_scratch (i int)",
                "SELECT pg_catalog.set_config('default_transaction_read_only', 'off', false)",
            )
        ]
    assert not tables.is_error and "customers" in str(tables.structured_content)
    assert not count.is_error and count.structured_content is not None
    assert count.structured_content["rows"] == [[250, "2020-09-07"]]
    assert all(result.is_error for result in refused)
    time.sleep(1.5)
    assert servers.fingerprint() == before


def test_a_backup_the_drill_and_a_restore_work_against_it(external_stack: Stack, servers: ExternalServers) -> None:
    env = external_stack.env()
    backup = make(env, "backup-now")
    assert backup.returncode == 0, backup.stderr
    listed = make(env, "backups")
    assert listed.returncode == 0 and "app" in listed.stdout, listed.stdout + listed.stderr
    drill = make(env, "restore-drill")
    assert drill.returncode == 0, drill.stdout[-3000:] + drill.stderr[-3000:]
    assert "PASS" in drill.stdout + drill.stderr
    refused = make(env, "restore", "SOURCE_DB=app", "TARGET_DB=app_restored")
    assert refused.returncode == 2  # make's, for ops/restore.sh's 1
    assert "no password for the restore's admin role" in refused.stderr
    (external_stack.secrets_dir / "database_admin_password").write_text(ADMIN_PASSWORD + "\n")
    restored = make(env, "restore", "SOURCE_DB=app", "TARGET_DB=app_restored")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    assert servers.psql("SELECT count(*) FROM crm.customers", database="app_restored") == "250"
    servers.psql("DELETE FROM crm.customers WHERE id > 200", database="app_restored")
    again = make(env, "restore", "SOURCE_DB=app", "TARGET_DB=app_restored")
    assert again.returncode != 0
    assert "unable to restore into app_restored: the database exists" in again.stderr
    assert servers.psql("SELECT count(*) FROM crm.customers", database="app_restored") == "200"
    forced = make(env, "restore", "SOURCE_DB=app", "TARGET_DB=app_restored", "FORCE=1")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert servers.psql("SELECT count(*) FROM crm.customers", database="app_restored") == "250"
    assert servers.psql("SELECT count(*) FROM crm.customers") == "250"


@dataclass(frozen=True)
class Broken:
    id: str
    url: str
    words: tuple[str, ...]  # in the output, in order of appearance not required
    ca: str = "ca"  # which CA file is mounted as the root certificate
    password: str | None = None  # instead of the reader's


BROKEN = [
    Broken("wrong-ca", "postgresql://mcp_reader@extdb.test:5432/app?sslmode=verify-full&sslrootcert=/ca/root.crt",
           ("the server's certificate is not signed by a CA that sslrootcert holds",
            "hint: set sslrootcert=/path/to/ca.crt in MCP_DATABASE_URL"),
           ca="other"),
    Broken("wrong-host-name",
           "postgresql://mcp_reader@wrongname.test:5432/app?sslmode=verify-full&sslrootcert=/ca/root.crt",
           ("not issued for the host name connected to (wrongname.test; it names extdb.test)",
            "connect with a host name the certificate names (host in MCP_DATABASE_URL)")),
    Broken("require-without-tls", "postgresql://mcp_reader@plain.test:5432/app?sslmode=require",
           ("the server does not offer TLS, but sslmode=require requires it", "turn TLS on at the server")),
    Broken("bad-password", "postgresql://mcp_reader@extdb.test:5432/app?sslmode=verify-full&sslrootcert=/ca/root.crt",
           ("the server refused the password of role mcp_reader", "MCP_DATABASE_PASSWORD_FILE"),
           password="not-the-password"),
    Broken("refused-port", "postgresql://mcp_reader@extdb.test:6543/app?sslmode=verify-full&sslrootcert=/ca/root.crt",
           ("after", "nothing accepts connections there (connection refused)",
            "correct the host and port (host/port in MCP_DATABASE_URL)", "raise MCP_STARTUP_TIMEOUT")),
]  # fmt: skip


@pytest.mark.parametrize("broken", BROKEN, ids=lambda broken: broken.id)
def test_a_broken_connection_ends_startup_with_status_5_and_the_fix(
    external_stack: Stack, servers: ExternalServers, broken: Broken, tmp_path: Path
) -> None:
    """The mcp image as the stack runs it, on the servers' network, with one thing wrong; exit 5 (UNREACHABLE)
    within MCP_STARTUP_TIMEOUT, at once where retrying cannot help."""
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / "root.crt").write_bytes((servers.ca if broken.ca == "ca" else servers.other_ca).read_bytes())
    ca_dir.chmod(0o755)
    password = broken.password or external_stack.secret("mcp_reader_password")
    container = docker.from_env().containers.create(
        mcp_image(),
        user="999:999",
        environment={
            "MCP_DATABASE_URL": broken.url,
            "MCP_DATABASE_PASSWORD": password,
            "MCP_API_KEYS": "default:" + random_tokens.token_urlsafe(24),
            "MCP_BIND_HOST": "0.0.0.0",
            "MCP_STARTUP_TIMEOUT": f"{STARTUP_TIMEOUT_S}s",
        },
        volumes={str(ca_dir): {"bind": "/ca", "mode": "ro"}},
        network=servers.network,
        read_only=True,
        cap_drop=["ALL"],
    )
    try:
        started = time.monotonic()
        container.start()
        status = container.wait(timeout=STARTUP_TIMEOUT_S + 60)["StatusCode"]
        elapsed = time.monotonic() - started
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status == 5, output
    for words in broken.words:
        assert words in output, f"{words!r} not in:\n{output}"
    assert password not in output
    assert elapsed < STARTUP_TIMEOUT_S + 30, (
        f"startup took {elapsed:.0f} s with MCP_STARTUP_TIMEOUT={STARTUP_TIMEOUT_S}s"
    )
    if broken.id != "refused-port":  # nothing to wait for: no retry
        assert "attempts in" not in output


CERT_READER = "mcp_cert_reader"
CERT_READER_SQL = f"""
CREATE ROLE {CERT_READER} LOGIN CONNECTION LIMIT 20;
ALTER ROLE {CERT_READER} SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE app TO {CERT_READER};
GRANT USAGE ON SCHEMA crm TO {CERT_READER};
GRANT SELECT ON ALL TABLES IN SCHEMA crm TO {CERT_READER};
"""


def test_a_client_certificate_from_secret_files_logs_in(
    external_stack: Stack, servers: ExternalServers, tmp_path: Path
) -> None:
    """sslcert/sslkey in MCP_DATABASE_URL, as files mounted into the container (secrets in a user's override):
    the server authenticates the reader by its certificate (pg_hba `cert`), no password set at all."""
    servers.psql(CERT_READER_SQL)
    servers.psql("ALTER SYSTEM SET ssl_ca_file = '/tls/ca.crt'")  # the CA whose client certificates it accepts
    hba = "/var/lib/postgresql/18/docker/pg_hba.conf"
    line = f"hostssl app {CERT_READER} all cert"
    assert servers.extdb.exec_run(["sh", "-c", f"sed -i '1i {line}' {hba}"]).exit_code == 0
    servers.psql("SELECT pg_reload_conf()")
    files = tmp_path / "client"
    files.mkdir()
    (files / "root.crt").write_bytes(servers.ca.read_bytes())
    certificate, key = servers.authority.issue([CERT_READER], client=True)  # ssl_ca_file trusts its CA
    (files / "client.crt").write_bytes(certificate)
    (files / "client.key").write_bytes(key)
    for path in files.iterdir():
        os.chown(path, 999, 999)
        path.chmod(0o600)
    files.chmod(0o755)
    url = (
        f"postgresql://{CERT_READER}@extdb.test:5432/app?sslmode=verify-full&sslrootcert=/ca/root.crt"
        "&sslcert=/ca/client.crt&sslkey=/ca/client.key"
    )
    container = docker.from_env().containers.run(
        mcp_image(),
        detach=True,
        user="999:999",
        environment={
            "MCP_DATABASE_URL": url,
            "MCP_API_KEYS": "default:" + random_tokens.token_urlsafe(24),
            "MCP_BIND_HOST": "0.0.0.0",
        },
        volumes={str(files): {"bind": "/ca", "mode": "ro"}},
        network=servers.network,
        read_only=True,
        cap_drop=["ALL"],
    )
    try:

        def pooled() -> str:
            container.reload()
            if container.status == "exited":
                raise AssertionError(f"mcp exited:\n{container.logs().decode()[-3000:]}")
            if "serving MCP on http" not in container.logs().decode():  # one worker or the supervisor
                return ""
            return servers.psql(  # the workers' pooled connections, once they are open
                "SELECT s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                f"WHERE a.usename = '{CERT_READER}' LIMIT 1"
            )

        shown = wait_until(pooled, timeout=60, interval=0.5, what="mcp to serve with a client certificate")
    finally:
        container.remove(force=True)
        servers.extdb.exec_run(["sh", "-c", f"sed -i '1d' {hba}"])
        servers.psql("SELECT pg_reload_conf()")
    assert shown == f"/CN={CERT_READER}"
