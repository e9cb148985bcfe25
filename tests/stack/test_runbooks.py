"""Every `bash` block of every runbook runs, in order, against a test stack (STYLE rule 22): a runbook
whose commands do not work is worse than none. Placeholders get the values a responder would type."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.fixtures.stack import Stack

RUNBOOKS = sorted(
    path for path in (Path(__file__).resolve().parents[2] / "runbooks").glob("*.md") if path.name != "TEMPLATE.md"
)
FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def placeholders() -> dict[str, str]:
    return {
        "<backup-id>": "latest",
        "<set-id>": "latest",
        "<target-db>": f"runbook_check_{uuid.uuid4().hex[:8]}",
        "<role>": "mcp_reader",
        "<service>": "postgres",
    }


def test_there_are_runbooks_with_commands() -> None:
    assert len(RUNBOOKS) >= 3
    for path in RUNBOOKS:
        assert FENCE.search(path.read_text()), f"{path.name} has no bash block"


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda path: path.stem)
def test_runbook_commands_run(stack: Stack, runbook: Path) -> None:
    values = placeholders()
    for number, block in enumerate(FENCE.findall(runbook.read_text()), start=1):
        for placeholder, value in values.items():
            block = block.replace(placeholder, value)
        assert not re.search(r"<[a-z-]+>", block), f"{runbook.name} block {number}: unknown placeholder"
        result = subprocess.run(
            ["bash", "-Eeuo", "pipefail", "-c", block],
            cwd=runbook.parents[1],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert result.returncode == 0, (
            f"{runbook.name} block {number} failed ({result.returncode}):\n{block}\n"
            f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
        )
