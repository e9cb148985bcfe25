"""Every `bash` block of every runbook and of docs/operations.md runs, in order, against a test stack (STYLE
rule 22): a runbook whose commands do not work is worse than none. Placeholders get the values a responder
would type. A block followed by a `text` fence must also print what that fence shows, by the rule of
tests/checks/command_blocks.py (also stated in runbooks/TEMPLATE.md).

The pages show what an operator of the default project sees (containers `pgstack-<service>-1`, ports 5432
and 8080); the test stack has its own project name and ports, so its output is shown under the default
names before it is compared."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from devtools.paths import REPO
from tests.checks.command_blocks import PLACEHOLDER, command_blocks, mismatch
from tests.fixtures.stack import Stack

DEFAULT_PROJECT = "pgstack"
DEFAULT_PG_PORT = 5432
DEFAULT_MCP_PORT = 8080
PAGES = sorted(path for path in (REPO / "runbooks").glob("*.md") if path.name != "TEMPLATE.md") + [
    REPO / "docs" / "operations.md"
]


def placeholders() -> dict[str, str]:
    key = f"runbook-{uuid.uuid4().hex[:8]}"
    return {
        # the key rotation's old key is the one it just made: the session stack's `default` key stays
        "<new-key>": key,
        "<old-key>": key,
        "<backup-id>": "latest",
        "<set-id>": "latest",
        "<target-db>": f"runbook_check_{uuid.uuid4().hex[:8]}",
        "<role>": "mcp_reader",
        "<service>": "postgres",
    }


def as_default_project(output: str, stack: Stack) -> str:
    """The output as the default project would print it: its name and its published ports."""
    output = output.replace(stack.project, DEFAULT_PROJECT)
    output = output.replace(f"127.0.0.1:{stack.pg_port}->", f"127.0.0.1:{DEFAULT_PG_PORT}->")
    return output.replace(f"127.0.0.1:{stack.mcp_port}->", f"127.0.0.1:{DEFAULT_MCP_PORT}->")


def test_there_are_pages_with_commands_and_expected_output() -> None:
    assert len(PAGES) >= 4
    for path in PAGES:
        assert command_blocks(path.read_text()), f"{path.name} has no bash block"
    expectations = sum(block.expected is not None for path in PAGES for block in command_blocks(path.read_text()))
    assert expectations >= 10, "the pages show the output of their commands"


def test_the_output_is_shown_under_the_default_names() -> None:
    stack = Stack(project="pgstack-test-0a1b2c3d", pg_port=40001, mcp_port=40002)
    printed = (
        "pgstack-test-0a1b2c3d-postgres-1  Up 5 seconds (healthy)  127.0.0.1:40001->5432/tcp\n"
        "pgstack-test-0a1b2c3d-mcp-1  Up 5 seconds (healthy)  127.0.0.1:40002->8080/tcp\n"
    )
    assert as_default_project(printed, stack) == (
        "pgstack-postgres-1  Up 5 seconds (healthy)  127.0.0.1:5432->5432/tcp\n"
        "pgstack-mcp-1  Up 5 seconds (healthy)  127.0.0.1:8080->8080/tcp\n"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_page_commands_run_and_print_what_the_page_shows(stack: Stack, page: Path) -> None:
    values = placeholders()
    for block in command_blocks(page.read_text()):
        where = f"{page.relative_to(REPO)} line {block.line}"
        commands = block.commands
        for placeholder, value in values.items():
            commands = commands.replace(placeholder, value)
        assert not PLACEHOLDER.search(commands), f"{where}: unknown placeholder in\n{commands}"
        result = subprocess.run(
            ["bash", "-Eeuo", "pipefail", "-c", commands],
            cwd=REPO,
            env=stack.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        output = as_default_project(result.stdout, stack)
        assert result.returncode == 0, f"{where} failed ({result.returncode}):\n{commands}\noutput:\n{output[-4000:]}"
        if block.expected is not None:
            problem = mismatch(block.expected, output)
            assert problem is None, f"{where}: {problem}\ncommands:\n{commands}\noutput:\n{output[-4000:]}"
