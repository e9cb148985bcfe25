"""compose.yaml read as data: what every service must have, checked without starting anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgbackup.commands import settings as backup_settings
from pgbackup.config import SPECS
from pgbackup.config import unknown_variables as backup_unknown
from pgmcp import generated as mcp_generated
from pgmcp.config import VARIABLES, Settings
from pgmcp.config import unknown_variables as mcp_unknown

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "compose" / "compose.yaml"
LONG_RUNNING = ("postgres", "mcp", "backup")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text())["services"])


def test_compose_accepts_the_file() -> None:
    """Compose v2 itself validates the file."""
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
    assert "PGSSLMODE=verify-full PGSSLROOTCERT=/run/secrets/tls_ca_cert" in check


@pytest.mark.parametrize("name", ["mcp", "backup", "restore"])
def test_clients_verify_the_server_against_the_stacks_ca(services: dict[str, Any], name: str) -> None:
    """mcp, backup and restore connect with sslmode=verify-full against the CA of ops/secrets.sh."""
    environment = services[name]["environment"]
    prefix = "MCP_DATABASE_" if name == "mcp" else "BACKUP_PG"
    assert str(environment[f"{prefix}SSLMODE"]).endswith("verify-full}") or environment[f"{prefix}SSLMODE"] == (
        "verify-full"
    )
    assert environment[f"{prefix}SSLROOTCERT"] == "/run/secrets/tls_ca_cert"
    assert "tls_ca_cert" in services[name]["secrets"]


def test_backup_reaches_only_the_internal_network(services: dict[str, Any]) -> None:
    networks = yaml.safe_load(COMPOSE_FILE.read_text())["networks"]
    assert networks["backend"]["internal"] is True
    assert services["backup"]["networks"] == ["backend"]
    assert services["restore-drill"]["network_mode"] == "none"


@pytest.mark.parametrize("name", ["compose.yaml", "stack.yaml"])
def test_the_pass_through_lists_are_generated_from_the_declarations(name: str) -> None:
    """STYLE rule 15: each service's `compose="pass"` settings are written into compose.yaml (and the Swarm
    variant, stack.yaml) between markers."""
    text = (COMPOSE_FILE.parent / name).read_text()
    for begin in (mcp_generated.COMPOSE_BEGIN, backup_settings.COMPOSE_BEGIN):
        assert begin in text, f"{name} lacks the marker {begin!r}"
    regenerate = f"settings --update compose/{name}"
    assert mcp_generated.update(text) == text, f"{name} is stale: run `python -m pgmcp {regenerate}`"
    assert backup_settings.render_readme(text) == text, f"{name} is stale: run `python -m pgbackup {regenerate}`"


@pytest.mark.parametrize("name", ["backup", "restore", "restore-drill"])
def test_nothing_unknown_reaches_the_backup_services(services: dict[str, Any], name: str) -> None:
    """pgbackup refuses an unknown BACKUP_* variable (exit 3): Compose must pass only declared names."""
    assert backup_unknown(services[name]["environment"]) == []


def test_nothing_unknown_reaches_the_mcp_server(services: dict[str, Any]) -> None:
    assert mcp_unknown(services["mcp"]["environment"]) == []


def test_every_backup_setting_is_passed_or_fixed_by_the_stack(services: dict[str, Any]) -> None:
    """A BACKUP_* line in compose/.env must not be silently ignored: each `pass` setting reaches the sidecar with
    its own default (so an unset variable behaves as documented in services/backup/README.md). A `never` setting
    (BACKUP_DATABASE_URL: only a Compose file for an external server passes it) reaches no backup service, so
    compose/.env cannot point the stack's own sidecar elsewhere."""
    passed = services["backup"]["environment"]
    assert "BACKUP_DATABASE_URL" in {spec.name for spec in SPECS if spec.compose == "never"}
    for spec in SPECS:
        if spec.compose == "pass":
            assert passed[spec.name] == f"${{{spec.name}:-{spec.default}}}", spec.name
        elif spec.compose == "never":
            for name in ("backup", "restore", "restore-drill"):
                environment = services[name]["environment"]
                assert spec.name not in environment and f"{spec.name}_FILE" not in environment, (name, spec.name)
        else:
            assert f"${{{spec.name}" not in str(passed.get(spec.name, "")), f"{spec.name} is fixed by the stack"


def test_the_drill_is_stricter_in_the_stack(services: dict[str, Any]) -> None:
    """The stack's drill limits (said so in compose/.env.example) are stricter than the sidecar's defaults."""
    drill = services["restore-drill"]["environment"]
    assert (drill["BACKUP_DRILL_MAX_RTO"], drill["BACKUP_DRILL_MAX_RPO"]) == (
        "${BACKUP_DRILL_MAX_RTO:-10m}",
        "${BACKUP_DRILL_MAX_RPO:-2h}",
    )


# `pass` settings whose unset value in the stack is stricter than the server's own default, on purpose: TLS
# verified against the stack's CA (MCP_DATABASE_SSLROOTCERT, fixed by the stack, names it).
STRICTER_IN_THE_STACK = {"MCP_DATABASE_SSLMODE": "verify-full"}


def test_every_mcp_setting_is_passed_fixed_or_kept_out(services: dict[str, Any]) -> None:
    """Each `pass` setting comes from compose/.env with the server's own default (or, for STRICTER_IN_THE_STACK,
    the stack's), and those defaults, as Compose hands them over when nothing is set, parse to exactly the
    server's defaults; MCP_DEV_ALLOW_PRIVILEGED_ROLE and MCP_DATABASE_URL (`never`) are not passed at all: the
    stack never starts on a privileged role, and the bundled stack's server reads the split settings."""
    environment = services["mcp"]["environment"]
    assert "MCP_DATABASE_URL" in {variable.env for variable in VARIABLES if variable.compose == "never"}
    unset: dict[str, str] = {}
    for variable in VARIABLES:
        reference = str(environment.get(variable.env, ""))
        if variable.compose == "never":
            assert variable.env not in environment and f"{variable.env}_FILE" not in environment, variable.env
        elif variable.compose == "stack":
            assert "${" not in reference, f"{variable.env} is fixed by the stack"
        else:
            prefix = f"${{{variable.env}:-"
            assert reference.startswith(prefix) and reference.endswith("}"), (variable.env, reference)
            unset[variable.env] = reference.removeprefix(prefix).removesuffix("}")
            if variable.env in STRICTER_IN_THE_STACK:
                assert unset.pop(variable.env) == STRICTER_IN_THE_STACK[variable.env], variable.env
    parsed = Settings.from_env({**unset, "MCP_DATABASE_PASSWORD": "x"})
    assert parsed == Settings(database_password="x")
