"""The README's "Connect a client" section: every client in it has a test here, and its first snippet gives the
stack's endpoint and reads the `default` key from the secrets file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from devtools.mcp_server import McpServerProcess
from pgmcp.config import unknown_variables
from tests.fast.clients.helpers import DOCUMENTED_URL, only_block, run_bash, subheadings

SECTION = "## Connect a client"
# each heading's snippets are run by the module named beside it; a new client in the README fails here until it has one
TESTED_HEADINGS = {
    "### Claude Code": "test_claude_code.py",
    "### Claude Desktop": "test_claude_desktop.py",
    "### Cursor": "test_editors.py",
    "### VS Code": "test_editors.py",
    "### MCP Inspector": "test_inspector.py",
    "### curl, 2025-era handshake protocol": "../mcp/test_readme.py",
    "### curl, 2026-07-28 protocol": "../mcp/test_readme.py",
}


def test_every_client_in_the_readme_has_a_test() -> None:
    assert subheadings(SECTION) == list(TESTED_HEADINGS)
    here = Path(__file__).parent
    assert all((here / module).is_file() for module in TESTED_HEADINGS.values())


def test_the_first_snippet_exports_the_stack_endpoint_and_its_default_key(
    server: McpServerProcess, key: str, tmp_path: Path
) -> None:
    script = only_block(SECTION, "bash")
    secrets_dir = tmp_path / "compose" / "secrets"
    secrets_dir.mkdir(parents=True)
    shutil.copy(server.env["MCP_API_KEYS_FILE"], secrets_dir / "mcp_api_keys")  # the same `name:key` file format
    result = run_bash(
        script + 'printf "%s\\n" "$PGMCP_URL" "$PGMCP_API_KEY"\n', env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path
    )
    assert result.stdout.splitlines() == [DOCUMENTED_URL, key]


def test_the_variables_the_readme_exports_leave_pgmcp_startable() -> None:
    """pgmcp refuses an unknown MCP_* variable (a typo must not leave a setting at its default), so the shell
    variables the README has users export must not be in its namespace: a `python -m pgmcp` started from that
    shell would not start."""
    exported = re.findall(r"^export (\w+)=", only_block(SECTION, "bash"), re.MULTILINE)
    assert exported == ["PGMCP_URL", "PGMCP_API_KEY"]
    assert unknown_variables(dict.fromkeys(exported, "x")) == []
