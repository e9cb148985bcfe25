"""Layers can be switched off in tests only: no setting, environment variable or entry point turns one off."""

from __future__ import annotations

import ast
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from devtools.mcp_server import McpServerProcess, server_environment, start_mcp_process
from devtools.native_pg import NativePostgres
from devtools.net import free_port
from pgmcp import config
from pgmcp.app import create_app, create_mcp
from pgmcp.errors import ExitCode
from pgmcp.layers import ALL_LAYERS, Layers

LAYER_NAMES = [field.name for field in fields(Layers)]
SOURCE = Path(config.__file__).parent


def test_the_default_is_every_layer_and_only_names_known_layers() -> None:
    assert ALL_LAYERS == Layers() and ALL_LAYERS.active() == LAYER_NAMES
    assert Layers.only("ro", "tmo").active() == ["ro", "tmo"]
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['paranoia'\]"):
        Layers.only("paranoia")


def test_no_setting_names_a_layer() -> None:
    """The operator configures limits and timeouts, never whether a layer runs."""
    assert not any(field.name in LAYER_NAMES or "layer" in field.name for field in fields(config.Settings))
    pattern = re.compile(r"LAYER|GUARD|READ_?ONLY|DISABLE|UNSAFE|_AST\b|_HYG\b|_CAP\b", re.IGNORECASE)
    assert [variable.env for variable in config.VARIABLES if pattern.search(variable.env)] == []


def test_the_entry_point_never_passes_layers() -> None:
    """`python -m pgmcp` builds the server with the factories' default: ALL_LAYERS."""
    tree = ast.parse((SOURCE / "__main__.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert not any(keyword.arg == "layers" for call in calls for keyword in call.keywords)
    for factory in (create_app, create_mcp):
        default = factory.__kwdefaults__ or {}
        assert default.get("layers") is ALL_LAYERS


SWITCHES = ("MCP_LAYERS", "MCP_DISABLE_AST", "MCP_READ_ONLY", "MCP_GUARD")
"""Environment variables an operator might try to switch layers off with."""


@pytest.fixture(scope="module")
def production(pg: NativePostgres) -> Iterator[McpServerProcess]:
    """The real entry point, with a variable outside the server's prefix that claims to switch layers off."""
    process = start_mcp_process(pg, keys={"ops": secrets.token_hex(32)}, overrides={"PGMCP_LAYERS": "off"})
    try:
        yield process
    finally:
        process.cleanup()


def test_production_runs_every_layer_whatever_the_environment(production: McpServerProcess) -> None:
    assert "layers role,ro,one,ast,tmo,cap,hyg" in production.log_text()


def test_a_switch_with_the_servers_prefix_stops_it(pg: NativePostgres, tmp_path: Path) -> None:
    """An unknown MCP_* variable is a configuration error (exit 3), not something to ignore: the server never
    serves while someone believes a layer is off."""
    env = server_environment(pg, tmp_path, port=free_port(), keys={"ops": secrets.token_hex(32)})
    env.update({name: "off" for name in SWITCHES})
    result = subprocess.run(
        [sys.executable, "-m", "pgmcp"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == ExitCode.CONFIG
    for name in SWITCHES:
        assert f"  - {name} is not a setting of pgmcp\n    hint: " in result.stderr
