"""The repository's documents stand alone: every relative Markdown link of a tracked file reaches a file (and
heading) inside the repository, no tracked file points at documents or paths outside it, and every `make`
target and `ops/`, `docs/` or `runbooks/` path that a document names in code exists."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

from devtools.paths import REPO
from tests.checks.command_blocks import fences

THIS_FILE = Path(__file__).resolve()

# Links: inline [text](target "title") and ![alt](target), and reference definitions [id]: target.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^(?:https?|mailto):", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# What points outside the repository: the workplace's shared notes and design documents, its absolute paths.
OUTSIDE = re.compile(
    r"\.\./shared\b|(?<![\w.])shared/(?:DESIGN|STYLE|research)|/work/(?:shared|main|wt)\b|\bDESIGN\b|mcp-anchors",
)
# `make TARGET` where a command starts: a line or code span, or after &&, ||, ;, | or (.
MAKE_TARGET = re.compile(r"(?:^|&&|\|\||;|\||\()[ \t]*make[ \t]+([a-z][a-z0-9-]*)", re.MULTILINE)
NAMED_PATH = re.compile(r"(?<![\w./-])((?:ops|docs|runbooks)/[\w.-]+(?:/[\w.-]+)*)")


@cache
def tracked() -> tuple[Path, ...]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    return tuple(REPO / name for name in listing.stdout.split("\0") if name and (REPO / name).is_file())


def markdown_files() -> list[Path]:
    return [path for path in tracked() if path.suffix == ".md"]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        return None


def without_fences(markdown: str) -> str:
    lines = markdown.splitlines()
    for fence in fences(markdown):
        for index in range(fence.line - 1, min(fence.end, len(lines))):
            lines[index] = ""
    return "\n".join(lines)


def without_code(markdown: str) -> str:
    """The page with fenced blocks and code spans blanked out: links are only read from prose."""
    return CODE_SPAN.sub("", without_fences(markdown))


def code_of(markdown: str) -> str:
    """Only what the page shows as code: its fenced blocks and code spans."""
    spans = [match[2] for match in CODE_SPAN.finditer(without_fences(markdown))]
    return "\n".join([fence.text for fence in fences(markdown)] + spans)


def link_targets(markdown: str) -> list[str]:
    prose = without_code(markdown)
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors: lowercase, punctuation dropped except `-` and `_`, spaces to `-`."""
    anchors: set[str] = set()
    for line in without_fences(markdown).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            title = CODE_SPAN.sub(lambda match: match[2], heading[1]).lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", title)))
    return anchors


def broken_links(path: Path, markdown: str) -> list[str]:
    """What is wrong with each relative link of the page at `path` whose text is `markdown`."""
    problems: list[str] = []
    for target in link_targets(markdown):
        if EXTERNAL.match(target):
            continue
        address, _, anchor = target.partition("#")
        destination = (path.parent / unquote(address)).resolve()
        where = f"{path.relative_to(REPO)}: link {target!r}"
        if not address:
            if anchor not in heading_anchors(markdown):
                problems.append(f"{where} names a heading that the page does not have")
        elif address.startswith("/"):
            problems.append(f"{where} is absolute; write it relative to the page")
        elif not destination.is_relative_to(REPO):
            problems.append(f"{where} leaves the repository")
        elif not destination.exists():
            problems.append(f"{where} names a file that does not exist")
        elif anchor and destination.suffix == ".md" and anchor not in heading_anchors(destination.read_text()):
            problems.append(f"{where} names a heading that {destination.relative_to(REPO)} does not have")
    return problems


@cache
def make_targets() -> frozenset[str]:
    text = (REPO / "Makefile").read_text()
    return frozenset(re.findall(r"^([a-zA-Z0-9_./-]+):(?!=)", text, re.MULTILINE))


def test_the_repository_has_linked_documents() -> None:
    pages = markdown_files()
    assert REPO / "README.md" in pages
    assert sum(len(link_targets(page.read_text())) for page in pages) >= 10, "the link reader finds no links"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_in_the_repository(page: Path) -> None:
    assert broken_links(page, page.read_text()) == []


# The kinds of reference this file looks for, assembled so that this file does not itself contain one.
STEERING_DESIGN = "/".join(["..", "..", "shared", "DESIGN.md"])


def test_the_link_check_refuses_links_out_of_the_repository() -> None:
    page = REPO / "docs" / "page.md"
    text = (
        f"# Title\n[design]({STEERING_DESIGN}) [gone](missing.md) [root](/etc/passwd) [ok](security.md)\n"
        "[here](#title) [nowhere](#no-such-heading) [web](https://example.com) `[code](../../x.md)`\n"
    )
    assert link_targets(text) == [
        STEERING_DESIGN,
        "missing.md",
        "/etc/passwd",
        "security.md",
        "#title",
        "#no-such-heading",
        "https://example.com",
    ]
    problems = broken_links(page, text)
    assert [problem.split(": link ")[1].split(" ", 1)[0] for problem in problems] == [
        f"'{STEERING_DESIGN}'",
        "'missing.md'",
        "'/etc/passwd'",
        "'#no-such-heading'",
    ]


def test_no_tracked_file_points_outside_the_repository() -> None:
    found = []
    for path in tracked():
        text = text_of(path)
        if path == THIS_FILE or text is None:
            continue  # this file spells the patterns out; binary files hold no references
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == [], "state what the reader needs in the repository's own words:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "see " + STEERING_DESIGN.removeprefix("../"),
        "DESIGN section 6",
        "/work/main/README.md",
        "research/mcp-anchors.md",
    ],
)
def test_the_outside_pattern_catches_each_form(line: str) -> None:
    assert OUTSIDE.search(line)


@pytest.mark.parametrize("page", markdown_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_make_target_and_script_a_page_names_exists(page: Path) -> None:
    code = code_of(page.read_text())
    missing = sorted(
        {f"make {target}" for target in MAKE_TARGET.findall(code) if target not in make_targets()}
        | {name for name in NAMED_PATH.findall(code) if "*" not in name and not (REPO / name).exists()}
    )
    assert missing == [], f"{page.relative_to(REPO)} names commands or files that do not exist"
