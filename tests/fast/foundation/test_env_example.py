"""compose/.env.example is safe to edit the obvious way: every commented `# NAME=value` line can be turned on by
removing its `# ` and nothing else. Turned on all at once, the file passes Compose and both services' own
validation (as Compose hands the values to each container), every value arrives as written, and every name in
it is one that Compose reads: a declared setting the stack passes through, or a stack variable (PG_PORT,
MCP_PORT, DEMO_ORDERS)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.paths import REPO
from pgbackup.config import SPECS
from pgbackup.config import Settings as BackupSettings
from pgmcp.config import VARIABLES
from pgmcp.config import Settings as McpSettings

ENV_EXAMPLE = REPO / "compose" / ".env.example"
COMPOSE_FILE = REPO / "compose" / "compose.yaml"
LINE = re.compile(r"^(?P<commented>#[ \t]?)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
# the names Compose reads from the environment in compose.yaml: `${NAME}`, `${NAME:-default}`
REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
SECRETS_IN_CONTAINER = "/run/secrets/"
BACKUP_SERVICES = ("backup", "restore", "restore-drill")
WORDED = {"BACKUP_SCHEDULE", "BACKUP_SCRUB_SCHEDULE", "BACKUP_DRILL_SCHEDULE"}
# read by ops/ (PROFILE) and by the profiles' files (compose/scale.yaml, compose/pooler.yaml), which
# tests/stack/test_scale.py and test_pooler.py start: not by compose.yaml, so `composed` below never sees them
PROFILE_VARIABLES = {
    "PROFILE",
    "MCP_REPLICAS",
    "HAPROXY_STATS_PORT",
    "DUMP_FROM",
    "PGBOUNCER_PORT",
    "MCP_TLS_PORT",
    "MCP_PUBLISH_ADDRESS",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "ALERTMANAGER_GROUP_WAIT",
}  # `every 60 minutes`, `daily at 02:30`


def setting_lines() -> list[tuple[bool, str, str]]:
    """(commented, name, value) of every `NAME=value` line, set or commented."""
    found = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = LINE.match(line)
        if match:
            found.append((match["commented"] is not None, match["name"], match["value"]))
    return found


def turned_on() -> str:
    """The file with every commented `NAME=value` line turned on by removing its `# ` and nothing else."""
    return "".join(
        re.sub(r"^#[ \t]?(?=[A-Z][A-Z0-9_]*=)", "", line) for line in ENV_EXAMPLE.read_text().splitlines(keepends=True)
    )


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker compose config` of the stack with every line of .env.example turned on, every service included."""
    env_file = tmp_path_factory.mktemp("env-example") / "env"
    env_file.write_text(turned_on())
    named = {name for _, name, _ in setting_lines()}
    # the caller's own settings would override the file's
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in named and not name.startswith(("MCP_", "BACKUP_"))
    }
    env.update({"POSTGRES_IMAGE": "postgres:18.6-bookworm", "PYTHON_IMAGE": "python:3.11-slim-bookworm"})
    result = subprocess.run(
        [
            str(REPO / "ops" / "compose.sh"),
            "--env-file",
            str(env_file),
            "--profile",
            "restore",
            "--profile",
            "drill",
            "config",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"Compose refuses .env.example with every line turned on:\n{result.stderr}"
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def container_environment(config: dict[str, Any], service: str, secrets_dir: Path) -> dict[str, str]:
    """The service's environment as Compose hands it over, its /run/secrets files stood in for by local ones."""
    environment = {name: str(value) for name, value in config["services"][service]["environment"].items()}
    for name, value in environment.items():
        if value.startswith(SECRETS_IN_CONTAINER):
            stand_in = secrets_dir / value.removeprefix(SECRETS_IN_CONTAINER)
            stand_in.write_text(f"default:{'k' * 43}\n" if stand_in.name == "mcp_api_keys" else f"{'p' * 43}\n")
            environment[name] = str(stand_in)
    return environment


def test_the_example_has_settings_to_turn_on() -> None:
    lines = setting_lines()
    assert sum(commented for commented, _, _ in lines) >= 10, "the optional settings are shown commented out"
    assert {name for commented, name, _ in lines if not commented} >= {"PG_PORT", "MCP_PORT", "DEMO_ORDERS"}


def test_every_name_is_a_setting_the_stack_passes_or_a_stack_variable() -> None:
    # compose.yaml and the profiles' files (compose/scale.yaml, ...), and PROFILE, which ops/compose.sh reads
    read_by_compose = {
        name for path in sorted(COMPOSE_FILE.parent.glob("*.yaml")) for name in REFERENCE.findall(path.read_text())
    } | {"PROFILE"}
    declared = {variable.env for variable in VARIABLES} | {spec.name for spec in SPECS}
    for _, name, _ in setting_lines():
        assert name in read_by_compose, f".env.example names {name}, which no compose/*.yaml file reads"
        # MCP_PORT: the published port; MCP_REPLICAS: how many mcp containers (compose/scale.yaml); MCP_TLS_PORT,
        # MCP_PUBLISH_ADDRESS: where the front door publishes (compose/tls.yaml)
        stack_only = ("MCP_PORT", "MCP_REPLICAS", "MCP_TLS_PORT", "MCP_PUBLISH_ADDRESS")
        if name.startswith(("MCP_", "BACKUP_")) and name not in stack_only:
            assert name in declared, f".env.example names {name}, which no service declares"


def test_every_value_stands_alone_on_its_line() -> None:
    """An explanation after a value would become part of it (`BACKUP_DATABASES=app  (default: ...)` names a
    database called `app  (default: ...)`, which validation cannot tell from a real name): values are one word,
    but for the schedules, whose syntax is words."""
    for _, name, value in setting_lines():
        assert value == value.strip(), f"{name}: the value has leading or trailing blanks"
        if name not in WORDED:
            assert len(value.split()) == 1, f"{name}={value!r}: put the explanation on a comment line above it"


def test_every_value_arrives_as_written(composed: dict[str, Any]) -> None:
    """No explanation on a value's line ends up in the value."""
    services = composed["services"]
    published = {port["target"]: port["published"] for port in services["postgres"]["ports"] + services["mcp"]["ports"]}
    for _, name, value in setting_lines():
        if name == "PG_PORT":
            assert published[5432] == value
        elif name == "MCP_PORT":
            assert published[8080] == value
        elif name == "DEMO_ORDERS":
            assert services["postgres"]["environment"][name] == value
        elif name in PROFILE_VARIABLES:
            continue
        else:
            receivers = ["mcp"] if name.startswith("MCP_") else list(BACKUP_SERVICES)
            for service in receivers:
                if name in services[service]["environment"]:
                    assert services[service]["environment"][name] == value, (service, name)
            assert any(name in services[service]["environment"] for service in receivers), name


def test_every_line_turned_on_passes_the_mcp_servers_validation(composed: dict[str, Any], tmp_path: Path) -> None:
    McpSettings.from_env(container_environment(composed, "mcp", tmp_path))


@pytest.mark.parametrize("service", BACKUP_SERVICES)
def test_every_line_turned_on_passes_the_backup_services_validation(
    composed: dict[str, Any], tmp_path: Path, service: str
) -> None:
    BackupSettings.from_env(container_environment(composed, service, tmp_path))
