"""The optional profiles as Compose sees them (`ops/compose.sh config`, no container started): PROFILE=scale
layers compose/scale.yaml, PROFILE=pooler compose/pooler.yaml, in that order whatever order PROFILE names them;
a typo stops the script instead of starting the small stack; every service the profiles add is hardened like
the others. tests/stack/test_scale.py and test_pooler.py run them for real."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.paths import REPO

IMAGES = {
    "POSTGRES_IMAGE": "postgres:18.6-bookworm",
    "PYTHON_IMAGE": "python:3.11-slim-bookworm",
    "HAPROXY_IMAGE": "haproxy:3.2",
}


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("profiles") / "secrets"
    result = run("secrets.sh", secrets=directory)
    assert result.returncode == 0, result.stderr
    return directory


def run(script: str, *args: str, secrets: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "ops" / script), *args],
        env={**os.environ, "SECRETS_DIR": str(secrets), **IMAGES, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def model(secrets: Path, profile: str) -> dict[str, Any]:
    result = run("compose.sh", "config", "--format", "json", secrets=secrets, PROFILE=profile)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["services"])


def test_scale_adds_a_standby_and_haproxy_in_front_of_replicas(secrets: Path) -> None:
    services = model(secrets, "scale")
    assert set(services) == {"postgres", "postgres-standby", "mcp", "backup", "haproxy"}
    mcp = services["mcp"]
    assert "ports" not in mcp or mcp["ports"] == []  # HAProxy publishes the port
    assert mcp["deploy"]["replicas"] == 3
    environment = mcp["environment"]
    assert environment["MCP_DATABASE_HOST"] == "postgres-standby,postgres"
    assert environment["MCP_DATABASE_TARGET_SESSION_ATTRS"] == "prefer-standby"
    assert environment["MCP_DATABASE_LOAD_BALANCE_HOSTS"] == "random"
    # 3 replicas x 5 stay below the reader's CONNECTION LIMIT 20; both health checks' Host names are allowed
    assert int(environment["MCP_POOL_MAX_SIZE"]) * 3 < 20
    assert {"127.0.0.1", "mcp"} <= set(environment["MCP_ALLOWED_HOSTS"].split(","))
    ports = services["haproxy"]["ports"]
    assert {(port["host_ip"], port["target"]) for port in ports} == {("127.0.0.1", 8080), ("127.0.0.1", 8404)}
    assert services["postgres-standby"]["networks"] == {"backend": None}


@pytest.mark.parametrize("profile", ["scale,pooler", "pooler, scale"])
def test_scale_and_pooler_read_through_pgbouncer_from_the_primary(secrets: Path, profile: str) -> None:
    services = model(secrets, profile)
    assert {"pgbouncer", "haproxy", "postgres-standby"} <= set(services)
    environment = services["mcp"]["environment"]
    assert (environment["MCP_DATABASE_HOST"], environment["MCP_DATABASE_PORT"]) == ("pgbouncer", "6432")
    assert environment["MCP_DATABASE_TARGET_SESSION_ATTRS"] == "any"
    assert services["pgbouncer"]["ports"][0]["host_ip"] == "127.0.0.1"


def test_every_service_a_profile_adds_is_hardened_like_the_others(secrets: Path) -> None:
    services = model(secrets, "scale,pooler")
    for name in ("postgres-standby", "haproxy", "pgbouncer"):
        service = services[name]
        assert service["user"] == "999:999", name
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["read_only"] is True, name
        assert "mem_limit" in service and service["healthcheck"]["test"], name


def test_an_unknown_profile_stops_with_the_ones_there_are(secrets: Path) -> None:
    result = run("compose.sh", "config", secrets=secrets, PROFILE="scaled")
    assert result.returncode != 0
    assert "PROFILE=scaled is not a profile of the stack" in result.stderr
    assert "PROFILE=scale" in result.stderr and "PROFILE=pooler" in result.stderr


def test_scale_needs_the_bundled_postgres(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "mcp_database_url").write_text("postgresql://mcp_reader@db.example.com/app\n")  # external mode
    result = run("compose.sh", "config", secrets=directory, PROFILE="scale")
    assert result.returncode != 0
    assert "PROFILE=scale needs the bundled postgres" in result.stderr
