"""The command blocks of a Markdown page (runbooks, docs/operations.md) and the output they promise.

A ```` ```bash ```` fence holds commands to paste. A ```` ```text ```` fence that follows it, with nothing
but blank lines between, shows what those commands print. The matching rule (runbooks/TEMPLATE.md
states it for writers):

- Every line of the text fence, blank lines aside, must match one line of the output (stdout and stderr
  together, as a terminal shows them), **in the same order**. Output lines in between, before and after
  are allowed: a fence shows the lines that matter, not everything.
- A line is compared whole, with leading and trailing whitespace ignored and any run of whitespace
  matching any other run (columns may be aligned differently).
- `<name>` (lowercase letters, digits and `-`) matches any non-empty text: ids, sizes, ages, durations.
  `...` inside a line matches any text, even none; a line that is only `...` marks omitted output and
  matches nothing by itself.
- Each line must keep some literal text: a line made only of placeholders would match anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"<[a-z][a-z0-9-]*>")
_OPENING = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>[A-Za-z0-9_-]*)[ \t]*$")
_CLOSING = re.compile(r"^[ \t]*```[ \t]*$")
_TOKEN = re.compile(r"(?P<placeholder><[a-z][a-z0-9-]*>)|(?P<gap>\.\.\.)|(?P<space>\s+)")
OMITTED = "..."


@dataclass(frozen=True)
class Fence:
    """One fenced block: its language, the line of its opening fence (1-based) and its text."""

    language: str
    line: int
    end: int
    text: str


@dataclass(frozen=True)
class CommandBlock:
    """A `bash` fence and, when a `text` fence follows it directly, the output it promises."""

    line: int
    commands: str
    expected: str | None


class ExpectedOutputError(ValueError):
    """A text fence that cannot be used as an expectation (a line with no literal text)."""


def fences(markdown: str) -> list[Fence]:
    """Every fenced block, with the opening fence's indentation removed from its lines."""
    found: list[Fence] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not _CLOSING.match(lines[end]):
            body.append(lines[end][indent:] if lines[end][:indent].strip() == "" else lines[end])
            end += 1
        found.append(Fence(opening["language"], index + 1, end + 1, "".join(f"{line}\n" for line in body)))
        index = end + 1
    return found


def command_blocks(markdown: str) -> list[CommandBlock]:
    """The page's `bash` fences in order, each with the `text` fence right after it (or None)."""
    lines = markdown.splitlines()
    found = fences(markdown)
    blocks: list[CommandBlock] = []
    for position, fence in enumerate(found):
        if fence.language != "bash":
            continue
        expected = None
        if position + 1 < len(found):
            after = found[position + 1]
            between = lines[fence.end : after.line - 1]
            if after.language == "text" and all(not line.strip() for line in between):
                expected = after.text
        blocks.append(CommandBlock(fence.line, fence.text, expected))
    return blocks


def line_pattern(expected_line: str) -> re.Pattern[str]:
    """The regular expression one expected line stands for (see the module's rule)."""
    text = expected_line.strip()
    if not PLACEHOLDER.sub("", text).replace(OMITTED, "").strip():
        raise ExpectedOutputError(f"expected line {expected_line!r} has no literal text, so it matches anything")
    parts: list[str] = []
    position = 0
    for token in _TOKEN.finditer(text):
        parts.append(re.escape(text[position : token.start()]))
        if token["placeholder"]:
            parts.append(".+?")
        elif token["gap"]:
            parts.append(".*?")
        else:
            parts.append(r"\s+")
        position = token.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts))


def mismatch(expected: str, output: str) -> str | None:
    """None when the output keeps the promise of the text fence, else what is missing and where."""
    wanted = [line for line in expected.splitlines() if line.strip() and line.strip() != OMITTED]
    if not wanted:
        raise ExpectedOutputError("the text fence holds no expected line")
    printed = [line.strip() for line in output.splitlines()]
    position = 0
    for expected_line in wanted:
        pattern = line_pattern(expected_line)
        for index in range(position, len(printed)):
            if pattern.fullmatch(printed[index]):
                position = index + 1
                break
        else:
            after = f"after output line {position} ({printed[position - 1]!r})" if position else "anywhere"
            return f"expected line {expected_line.strip()!r} not found {after}"
    return None
