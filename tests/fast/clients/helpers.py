"""Run the MCP clients the README documents, as the README writes them.

The snippets come from the README text itself (the fenced blocks under each client's heading, so editing the README
changes what is tested); the clients come from tests/clients/package-lock.json, installed by `ops/node.sh clients`
into .state/clients. The README's own values (`http://127.0.0.1:8080/mcp`, `<key>`, `/home/you`...) are replaced by
the test server's, and each replacement first checks that the README still holds the value it replaces.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client

from devtools.mcp_server import McpServerProcess
from devtools.net import http_get
from devtools.paths import REPO
from tests.fast.mcp.helpers import ok
from tests.helpers import wait_until

MCP_README = REPO / "services" / "mcp" / "README.md"
CLIENTS_MANIFEST = REPO / "tests" / "clients" / "package.json"
DOCUMENTED_URL = "http://127.0.0.1:8080/mcp"
SIX_TOOLS = ["list_schemas", "list_tables", "describe_table", "search_schema", "query", "explain"]
CLIENTS_INSTALL_TIMEOUT_S = 1200
# Claude Code opens a connection to its API at startup, even for `claude mcp` and with non-essential traffic off;
# pointed at the discard port on loopback (nothing listens there), it sends nothing off this machine
CLAUDE_API_URL = "http://127.0.0.1:9"
HEADING = re.compile(r"^(#{1,6}) (.+)$")
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Block:
    """One fenced block of a README: its language tag and its text (without the fences)."""

    language: str
    text: str


def readme_sections(readme: Path = MCP_README) -> dict[str, list[Block]]:
    """Every heading of `readme` (with its `#`s, e.g. "### Claude Code") and the fenced blocks directly under it."""
    sections: dict[str, list[Block]] = {}
    current: list[Block] = sections.setdefault("", [])
    fence: tuple[str, list[str]] | None = None
    for line in readme.read_text().splitlines():
        if fence is not None:
            if line.startswith("```"):
                current.append(Block(fence[0], "\n".join(fence[1]) + "\n"))
                fence = None
            else:
                fence[1].append(line)
        elif line.startswith("```"):
            fence = (line.removeprefix("```").strip(), [])
        elif HEADING.match(line):
            current = sections.setdefault(line.strip(), [])
    assert fence is None, f"{readme}: a fenced block is never closed"
    return sections


def subheadings(heading: str, readme: Path = MCP_README) -> list[str]:
    """The headings one level below `heading` (e.g. "## Connect a client"), up to the next heading of its level."""
    level = len(heading) - len(heading.lstrip("#"))
    names = list(readme_sections(readme))
    assert heading in names, f"{readme} has no heading {heading!r}"
    found: list[str] = []
    for name in names[names.index(heading) + 1 :]:
        depth = len(name) - len(name.lstrip("#"))
        if depth <= level:
            break
        if depth == level + 1:
            found.append(name)
    return found


def blocks(heading: str, language: str, readme: Path = MCP_README) -> list[str]:
    """The texts of the `language` blocks under `heading`; fails when there is none."""
    sections = readme_sections(readme)
    assert heading in sections, f"{readme} has no heading {heading!r}"
    texts = [block.text for block in sections[heading] if block.language == language]
    assert texts, f"{readme}: no ```{language} block under {heading!r}"
    return texts


def only_block(heading: str, language: str, readme: Path = MCP_README) -> str:
    """The text of the one `language` block under `heading`; fails when there are several."""
    texts = blocks(heading, language, readme)
    assert len(texts) == 1, f"{readme}: {len(texts)} ```{language} blocks under {heading!r}, the test runs one"
    return texts[0]


def replace_documented(text: str, replacements: Mapping[str, str]) -> str:
    """`text` with each documented value replaced; each one must occur (else the README and its test disagree)."""
    for documented, actual in replacements.items():
        assert documented in text, f"the README snippet no longer contains {documented!r}:\n{text}"
        text = text.replace(documented, actual)
    return text


def resolve_placeholders(value: str, variables: Mapping[str, str]) -> str:
    """An editor's `${name}` substitution: `${input:id}`, `${env:NAME}`... from `variables`; an unknown one fails."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in variables, f"{value!r}: the editor would not resolve ${{{name}}} (known: {sorted(variables)})"
        return variables[name]

    return PLACEHOLDER.sub(one, value)


def pinned_version(package: str) -> str:
    """The version tests/clients/package.json pins for `package`."""
    dependencies: dict[str, str] = json.loads(CLIENTS_MANIFEST.read_text())["dependencies"]
    return dependencies[package]


def shell_words(script: str) -> list[str]:
    """The words of a shell snippet (line continuations joined), for checks on how a command is written."""
    return shlex.split(script.replace("\\\n", " "), comments=True)


class ClientsMissing(Exception):
    """The pinned clients could not be installed; the message says why and how to fix it."""


@dataclass(frozen=True)
class NodeClients:
    """The pinned Node 22 (`node_dir/bin/node`) and the pinned clients (`clients_dir/node_modules/.bin`)."""

    node_dir: Path
    clients_dir: Path

    @property
    def bin_dir(self) -> Path:
        return self.clients_dir / "node_modules" / ".bin"

    def environment(self, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a client run: a throwaway HOME (clients write their configuration and caches there),
        the pinned clients and Node first on PATH, npm offline (so `npx pkg@version` must find the pinned install
        and never downloads another), and Claude Code kept on loopback: its API on a closed local port, telemetry,
        error reports and updates off."""
        env = {name: value for name, value in os.environ.items() if not name.startswith(("MCP_", "npm_"))}
        env.update(
            {
                "HOME": str(home),
                "PATH": os.pathsep.join([str(self.bin_dir), str(self.node_dir / "bin"), os.environ.get("PATH", "")]),
                "npm_config_cache": str(home / ".npm"),
                "npm_config_offline": "true",
                "npm_config_update_notifier": "false",
                "npm_config_fund": "false",
                "ANTHROPIC_BASE_URL": CLAUDE_API_URL,
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_ERROR_REPORTING": "1",
            }
        )
        env.update(extra or {})
        return env


def install_clients() -> NodeClients:
    """Run `ops/node.sh clients` (npm ci from the lock file, skipped while .state/clients is current); its progress
    goes to the inherited stderr. Raises ClientsMissing with the script's error and the fix."""
    command = [str(REPO / "ops" / "node.sh"), "clients"]
    try:
        result = subprocess.run(
            command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=CLIENTS_INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClientsMissing(f"unable to install the pinned MCP clients: {exc}") from exc
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 2:
        raise ClientsMissing(
            f"unable to install the pinned MCP clients: ops/node.sh clients exited with {result.returncode}"
            f" (its error is printed above)\nhint: run `ops/node.sh clients` by hand; it needs npm (apt-get install"
            " npm) and the npm registry (npm ping)"
        )
    return NodeClients(node_dir=Path(lines[0]), clients_dir=Path(lines[1]))


def run_bash(
    script: str, *, env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a README snippet as a user pastes it, in `bash -euo pipefail`; fails with its output when it fails."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.returncode == 0, f"the README snippet exited with {result.returncode}:\n{script}\n{output}"
    return result


def audit_lines(text: str) -> list[dict[str, Any]]:
    """The server's audit lines (one JSON object per tool call) in a log."""
    return [json.loads(line) for line in text.splitlines() if '"pgmcp.audit"' in line]


def audited_calls(server: McpServerProcess, seen: int, *, what: str) -> list[tuple[str, str, str]]:
    """(key, tool, outcome) of the audit lines the server wrote after its first `seen` ones, once one has come (the
    line is written after the answer is sent)."""
    calls: list[tuple[str, str, str]] = []

    def arrived() -> bool:
        calls[:] = [(line["key"], line["tool"], line["outcome"]) for line in audit_lines(server.log_text())[seen:]]
        return bool(calls)

    wait_until(arrived, timeout=10, what=what, describe=lambda: server.log_text()[-2000:])
    return calls


def unauthorized_count(server: McpServerProcess) -> float:
    """How many requests the server refused for a missing or wrong key (its Prometheus counter)."""
    status, body = http_get(f"{server.base}/metrics", headers={"Host": f"127.0.0.1:{server.port}"})
    assert status == 200, body
    match = re.search(r'^pgmcp_http_rejections_total\{reason="unauthorized"\} (\S+)$', body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def list_tools_and_select_one(client: Client) -> tuple[list[str], Any]:
    """What every client test asks through its client: the tool names, and the rows of `query` with `SELECT 1`."""
    tools = [tool.name for tool in (await client.list_tools()).tools]
    return tools, ok(await client.call_tool("query", {"sql": "SELECT 1"}))["rows"]
