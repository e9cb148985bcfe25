"""The Compose stack as a whole: health, start order, exposure, version, roles, and that the containers
run as docs/architecture.md says (testinfra through `docker://`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import psycopg
import pytest
import testinfra

from tests.checks.roles import (
    ROLE_CASES,
    RoleCase,
    check_replicator_only_replicates,
    check_role_attributes,
    role_attributes,
    run_case,
)
from tests.fixtures.stack import SERVICES, Stack


def started_at(stack: Stack, service: str) -> datetime:
    return datetime.fromisoformat(stack.container(service).attrs["State"]["StartedAt"].replace("Z", "+00:00")[:26])


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_healthy(stack: Stack, service: str) -> None:
    state = stack.container(service).attrs["State"]
    assert state["Status"] == "running"
    assert state["Health"]["Status"] == "healthy"


@pytest.mark.parametrize("client", ["mcp", "backup"])
def test_clients_start_after_postgres_is_healthy(stack: Stack, client: str) -> None:
    """depends_on: service_healthy. The database's final "ready" line (after init) precedes the client's start."""
    logs = stack.container("postgres").logs(timestamps=True).decode()
    ready = [line for line in logs.splitlines() if "database system is ready to accept connections" in line]
    assert len(ready) >= 2, "expected the init server's and the real server's ready lines"
    final_ready = datetime.fromisoformat(ready[-1].split()[0].replace("Z", "+00:00")[:26])
    assert started_at(stack, client) > final_ready


def test_only_loopback_is_published(stack: Stack) -> None:
    for service in SERVICES:
        ports = stack.container(service).attrs["NetworkSettings"]["Ports"] or {}
        for bindings in ports.values():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", (service, binding)
    published = {
        service: list((stack.container(service).attrs["HostConfig"]["PortBindings"] or {}).keys())
        for service in SERVICES
    }
    assert published == {"postgres": ["5432/tcp"], "mcp": ["8080/tcp"], "backup": []}


def test_server_is_postgresql_18(stack: Stack) -> None:
    with psycopg.connect(stack.dsn()) as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert version is not None and version[0] // 10000 == 18
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        assert preload == ("pg_stat_statements",)
        reserved = conn.execute("SHOW reserved_connections").fetchone()
        assert reserved == ("5",)


@pytest.fixture
def connect(stack: Stack) -> Callable[[str], psycopg.Connection]:
    return lambda role: psycopg.connect(stack.dsn(role))


@pytest.mark.parametrize("case", ROLE_CASES, ids=lambda case: case.id)
def test_role_privileges(connect: Callable[[str], psycopg.Connection], case: RoleCase) -> None:
    assert run_case(connect, case) == case.expect


def test_role_attributes(stack: Stack) -> None:
    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        check_role_attributes(role_attributes(conn))


def test_the_replicator_can_only_replicate(stack: Stack) -> None:
    """Over TLS, as a standby would connect: the `replication` pseudo-database and nothing else."""
    check_replicator_only_replicates(lambda database: stack.dsn("replicator", database) + " sslmode=require")


def test_wrong_password_is_refused(stack: Stack) -> None:
    dsn = stack.dsn("mcp_reader").replace(f"password={stack.secret('mcp_reader_password')}", "password=wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn)


# -- inside the containers (testinfra) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hosts(stack: Stack) -> Iterator[dict[str, testinfra.host.Host]]:
    yield {service: testinfra.get_host(f"docker://{stack.container(service).id}") for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_every_process_runs_as_uid_999(hosts: dict[str, testinfra.host.Host], service: str) -> None:
    # /proc works in every image (the official ones have no `ps`)
    uids = hosts[service].check_output("cat /proc/[0-9]*/status | grep '^Uid:' | sort -u")
    assert uids.splitlines(), "no process found"
    for line in uids.splitlines():
        real, effective, saved, filesystem = line.split()[1:5]
        assert real == effective == saved == filesystem == "999", line


@pytest.mark.parametrize(
    ("service", "secret"),
    [
        ("postgres", "postgres_password"),
        ("postgres", "mcp_reader_password"),
        ("mcp", "mcp_api_keys"),
        ("mcp", "mcp_reader_password"),
        ("backup", "backup_password"),
    ],
)
def test_secret_files_are_private(hosts: dict[str, testinfra.host.Host], service: str, secret: str) -> None:
    secret_file = hosts[service].file(f"/run/secrets/{secret}")
    assert secret_file.exists
    assert secret_file.mode == 0o600
    assert secret_file.uid == 999


@pytest.mark.parametrize("path", ["/etc/postgresql/postgresql.conf", "/etc/postgresql/pg_hba.conf"])
def test_postgres_config_is_mounted_read_only(hosts: dict[str, testinfra.host.Host], path: str) -> None:
    host = hosts["postgres"]
    assert host.file(path).mode & 0o022 == 0
    assert host.run(f"test -w {path}").rc != 0
    assert host.run(f"sh -c ': >> {path}'").rc != 0


@pytest.mark.parametrize("service", SERVICES)
def test_root_filesystem_is_read_only(hosts: dict[str, testinfra.host.Host], service: str) -> None:
    result = hosts[service].run("touch /probe-write")
    assert result.rc != 0 and "Read-only file system" in result.stderr


def test_data_directory_is_private(hosts: dict[str, testinfra.host.Host]) -> None:
    data = hosts["postgres"].file("/var/lib/postgresql/18/docker")
    assert data.is_directory and data.mode == 0o700 and data.uid == 999
    assert hosts["postgres"].file("/var/lib/postgresql/18/docker/PG_VERSION").content_string.strip() == "18"
