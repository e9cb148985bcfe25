"""Shared pytest wiring: fixtures live in plugin modules under tests/fixtures (psycopg's layout)."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.pg",
]
