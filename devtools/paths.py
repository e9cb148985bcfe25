"""Where the repository is, for the tools that read its files (init scripts, configs, reports)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
