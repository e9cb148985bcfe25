"""Compose hardening, checked on the running stack (docker inspect through the Docker SDK, and inside the
containers through testinfra's docker:// backend, i.e. `docker exec`).

Non-root users, read-only root filesystems, every capability dropped, no-new-privileges, secret files readable
by their service's user only, ports published on loopback only, and postgres reachable by mcp and backup
over the internal network only.
"""

from __future__ import annotations

from typing import Any

import pytest
import testinfra

from tests.fixtures.stack import Stack

pytestmark = pytest.mark.stack

LONG_RUNNING = ("postgres", "mcp", "backup")
SERVICE_UID = 999
SECRETS = {
    "postgres": ("postgres_password", "app_owner_password", "mcp_reader_password", "backup_password"),
    "mcp": ("mcp_reader_password", "mcp_api_keys"),
    "backup": ("backup_password",),
}


def inspect(stack: Stack, service: str) -> dict[str, Any]:
    attrs: dict[str, Any] = stack.container(service).attrs
    return attrs


def host(stack: Stack, service: str) -> Any:
    return testinfra.get_host(f"docker://{stack.container(service).id}")


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_runs_as_a_non_root_user(stack: Stack, service: str) -> None:
    assert inspect(stack, service)["Config"]["User"] == f"{SERVICE_UID}:{SERVICE_UID}"
    status = host(stack, service).file("/proc/1/status").content_string
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids == [str(SERVICE_UID)] * 4, f"PID 1 of {service} runs with uids {uids}"


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_root_filesystem_is_read_only(stack: Stack, service: str) -> None:
    assert inspect(stack, service)["HostConfig"]["ReadonlyRootfs"] is True
    attempt = host(stack, service).run("touch /usr/pgstack-probe")
    assert attempt.rc != 0 and "Read-only file system" in attempt.stderr


# The only volumes a long-running service may write: its named volume (none for mcp). Anything else writable is
# a tmpfs. An image's VOLUME line (the postgres image declares /var/lib/postgresql, and the backup image inherits
# it) would otherwise give the container an anonymous volume: writable storage around the read-only root
# filesystem, left behind on the host by every `make down`.
NAMED_VOLUMES = {"postgres": {"pgdata"}, "mcp": set(), "backup": {"backups"}}


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_no_anonymous_volume_is_mounted(stack: Stack, service: str) -> None:
    mounts = inspect(stack, service)["Mounts"]
    volumes = {mount["Name"] for mount in mounts if mount["Type"] == "volume"}
    assert volumes == {f"{stack.project}_{name}" for name in NAMED_VOLUMES[service]}, mounts


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_capability_is_dropped(stack: Stack, service: str) -> None:
    config = inspect(stack, service)["HostConfig"]
    assert config["CapDrop"] == ["ALL"] and not config["CapAdd"]
    status = host(stack, service).file("/proc/1/status").content_string
    capabilities = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Cap")}
    assert capabilities["CapEff"] == capabilities["CapPrm"] == capabilities["CapBnd"] == "0000000000000000"


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_no_new_privileges(stack: Stack, service: str) -> None:
    assert "no-new-privileges:true" in inspect(stack, service)["HostConfig"]["SecurityOpt"]
    status = host(stack, service).file("/proc/1/status").content_string
    assert "NoNewPrivs:\t1" in status


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_memory_is_limited(stack: Stack, service: str) -> None:
    assert inspect(stack, service)["HostConfig"]["Memory"] > 0


@pytest.mark.parametrize(("service", "secret"), [(s, name) for s, names in SECRETS.items() for name in names])
def test_secret_files_are_private_to_the_service_user(stack: Stack, service: str, secret: str) -> None:
    inside = host(stack, service).file(f"/run/secrets/{secret}")
    assert inside.exists and inside.uid == SERVICE_UID
    assert inside.mode & 0o077 == 0, f"{secret} in {service} has mode {oct(inside.mode)}"
    on_host = (stack.secrets_dir / secret).stat()
    assert on_host.st_mode & 0o077 == 0


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_only_loopback_is_published(stack: Stack, service: str) -> None:
    bindings = inspect(stack, service)["NetworkSettings"]["Ports"] or {}
    published = [binding for targets in bindings.values() if targets for binding in targets]
    assert all(binding["HostIp"] == "127.0.0.1" for binding in published), published
    expected = {"postgres": 1, "mcp": 1, "backup": 0}[service]
    assert len(published) == expected


def test_postgres_shares_only_the_internal_network_with_mcp_and_backup(stack: Stack) -> None:
    networks = {service: set(inspect(stack, service)["NetworkSettings"]["Networks"]) for service in LONG_RUNNING}
    backend = f"{stack.project}_backend"
    assert networks["postgres"] & networks["mcp"] == {backend}
    assert networks["postgres"] & networks["backup"] == {backend}
    assert networks["backup"] == {backend}
    internal = stack.container("postgres").client.networks.get(backend).attrs["Internal"]
    assert internal is True


@pytest.mark.parametrize("service", ["mcp", "backup"])
def test_postgres_answers_mcp_and_backup_by_service_name(stack: Stack, service: str) -> None:
    probe = (
        "import socket; s = socket.create_connection(('postgres', 5432), timeout=5); "
        "print(s.getpeername()[0]); s.close()"
    )
    result = host(stack, service).run(f'python -c "{probe}"')
    assert result.rc == 0, result.stderr
    backend = inspect(stack, "postgres")["NetworkSettings"]["Networks"][f"{stack.project}_backend"]["IPAddress"]
    assert result.stdout.strip() == backend
