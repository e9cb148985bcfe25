"""compose.yaml read as data: what every service must have, checked without starting anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgbackup.config import SPECS
from pgmcp.config import VARIABLES, Settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "compose" / "compose.yaml"
LONG_RUNNING = ("postgres", "mcp", "backup")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text())["services"])


def test_compose_accepts_the_file() -> None:
    """Compose itself (v2 or v1.29, whichever is installed) validates the file."""
    env = {**os.environ, "POSTGRES_IMAGE": "postgres:18.6-bookworm", "PYTHON_IMAGE": "python:3.11-slim-bookworm"}
    result = subprocess.run(
        [str(REPO / "ops" / "compose.sh"), "config", "--quiet"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_are_hardened(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["restart"] == "unless-stopped"
    assert service["user"] == "999:999"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["healthcheck"]["test"]
    assert service["logging"]["options"]["max-size"]
    assert "stop_grace_period" in service


@pytest.mark.parametrize("name", ["mcp", "backup"])
def test_clients_wait_for_a_healthy_database(services: dict[str, Any], name: str) -> None:
    assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_published_ports_are_loopback_only(services: dict[str, Any]) -> None:
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published, "postgres and mcp must be published"
    for port in published:
        assert str(port).startswith("127.0.0.1:"), port


def test_postgres_health_is_an_authenticated_tcp_query(services: dict[str, Any]) -> None:
    check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "-h 127.0.0.1" in check and "SELECT 1" in check and "pg_isready" not in check


def test_backup_reaches_only_the_internal_network(services: dict[str, Any]) -> None:
    networks = yaml.safe_load(COMPOSE_FILE.read_text())["networks"]
    assert networks["backend"]["internal"] is True
    assert services["backup"]["networks"] == ["backend"]
    assert services["restore-drill"]["network_mode"] == "none"


# Settings of the backup sidecar that belong to the container, not to the operator: where things are and how
# the sidecar reaches postgres inside the stack. Everything else must reach the container from compose/.env.
BACKUP_INTERNAL = {
    "BACKUP_PGHOST",
    "BACKUP_PGPORT",
    "BACKUP_PGUSER",
    "BACKUP_PGPASSWORD",
    "BACKUP_PGPASSWORD_FILE",
    "BACKUP_PGDATABASE",
    "BACKUP_PGCONNECT_TIMEOUT",
    "BACKUP_CONNECT_RETRY",
    "BACKUP_DIR",
    "BACKUP_STATUS_PORT",
    "BACKUP_STATUS_BIND",
    "BACKUP_PG_BIN_DIR",
    "BACKUP_DRILL_WORK_DIR",
    "BACKUP_DRILL_USER",
}
# Stricter in the stack than the sidecar's own defaults, on purpose (and said so in .env.example).
BACKUP_STACK_DEFAULTS = {"BACKUP_DRILL_MAX_RTO": "600", "BACKUP_DRILL_MAX_RPO": "7200"}


def test_every_operator_setting_of_the_backup_sidecar_reaches_it(services: dict[str, Any]) -> None:
    """A BACKUP_* line in compose/.env must not be silently ignored: each operator setting is passed through,
    with the sidecar's own default (so an unset variable behaves as documented in services/backup/README.md)."""
    passed = {**services["backup"]["environment"], **services["restore-drill"]["environment"]}
    for spec in SPECS:
        if spec.name in BACKUP_INTERNAL:
            continue
        assert spec.name in passed, f"{spec.name} is not passed to the backup service in compose.yaml"
        default = BACKUP_STACK_DEFAULTS.get(spec.name, spec.default)
        assert passed[spec.name] == f"${{{spec.name}:-{default}}}", spec.name


# Settings of the MCP server fixed by the stack itself: how it reaches postgres, where its secrets are, where it
# listens. MCP_DEV_ALLOW_PRIVILEGED_ROLE is left out on purpose: the stack never starts on a privileged role.
MCP_INTERNAL = {
    "MCP_DATABASE_HOST",
    "MCP_DATABASE_PORT",
    "MCP_DATABASE_NAME",
    "MCP_DATABASE_USER",
    "MCP_DATABASE_PASSWORD",
    "MCP_API_KEYS",
    "MCP_BIND_HOST",
    "MCP_PORT",
    "MCP_DEV_ALLOW_PRIVILEGED_ROLE",
}


def test_every_operator_setting_of_the_mcp_server_reaches_it(services: dict[str, Any]) -> None:
    """Each operator setting is passed through from compose/.env with the server's own default, and those
    defaults, as Compose hands them over when nothing is set, parse to exactly the server's defaults."""
    environment = services["mcp"]["environment"]
    assert "MCP_DEV_ALLOW_PRIVILEGED_ROLE" not in environment
    unset: dict[str, str] = {}
    for variable in VARIABLES:
        if variable.env in MCP_INTERNAL:
            continue
        assert variable.env in environment, f"{variable.env} is not passed to the mcp service in compose.yaml"
        reference = str(environment[variable.env])
        prefix = f"${{{variable.env}:-"
        assert reference.startswith(prefix) and reference.endswith("}"), (variable.env, reference)
        unset[variable.env] = reference.removeprefix(prefix).removesuffix("}")
    parsed = Settings.from_env({**unset, "MCP_DATABASE_PASSWORD": "x"})
    assert parsed == Settings(database_password="x")
