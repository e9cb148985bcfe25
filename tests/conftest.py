"""Shared pytest wiring: fixtures live in plugin modules under tests/fixtures (psycopg's layout)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.pg",
    "tests.fixtures.stack",
]

STACK_DIR = Path(__file__).parent / "stack"
STACK_FIXTURES = {"stack", "fresh_stack"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by directory and by fixture: `stack` for anything that needs Compose, `destructive` for
    tests that get a private stack to break. Stack tests run last, so the fast tier reports first."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if STACK_DIR in Path(str(item.path)).parents or fixtures & STACK_FIXTURES:
            item.add_marker(pytest.mark.stack)
        if "fresh_stack" in fixtures:
            item.add_marker(pytest.mark.destructive)
    items.sort(key=lambda item: item.get_closest_marker("stack") is not None)


def pytest_report_header() -> list[str]:
    lines = []
    for label, command in (
        ("docker", ["docker", "version", "--format", "{{.Server.Version}}"]),
        # the Compose every ops/ script and fixture runs (v2, `docker compose`), through the same script
        ("compose", [str(Path(__file__).parents[1] / "ops" / "compose.sh"), "version", "--short"]),
    ):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
            lines.append(f"{label}: {result.stdout.strip() or result.stderr.strip()[:80]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            lines.append(f"{label}: unavailable ({exc})")
    return lines
