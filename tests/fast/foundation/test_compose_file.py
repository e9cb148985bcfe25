"""compose.yaml read as data: what every service must have, checked without starting anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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
