"""`make lint` holds on every change that CI sees: format, mypy --strict, ruff and ShellCheck (ops/lint.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_code_passes_lint() -> None:
    result = subprocess.run(
        [str(REPO / "ops" / "lint.sh")], cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, f"ops/lint.sh failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    assert "==> lint passed" in result.stderr
