"""The README's curl examples (every ```bash block starting with `# example:`) run against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from devtools.mcp_server import McpServerProcess
from tests.fast.mcp.helpers import ALICE

README = Path(__file__).resolve().parents[3] / "services" / "mcp" / "README.md"
EXAMPLE = re.compile(r"```bash\n(# example: (?P<name>[^\n]+)\n.*?)```", re.DOTALL)
EXAMPLES = {match.group("name"): match.group(1) for match in EXAMPLE.finditer(README.read_text())}


def test_the_readme_has_examples_for_both_protocol_versions() -> None:
    assert sum("(2025-11-25)" in name for name in EXAMPLES) >= 3
    assert sum("(2026-07-28)" in name for name in EXAMPLES) >= 3


@pytest.mark.parametrize("script", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_readme_example_runs(http_server: McpServerProcess, script: str) -> None:
    env = {**os.environ, "PGMCP_URL": http_server.url, "PGMCP_API_KEY": http_server.keys[ALICE]}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    answer = json.loads(result.stdout)
    assert "error" not in answer, answer
    if "result" in answer:
        assert answer["result"].get("isError") is not True, answer
