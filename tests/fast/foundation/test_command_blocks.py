"""The rule that compares a runbook's `text` fence with what its commands print (tests/checks/command_blocks.py):
it must accept the real output shapes and refuse a wrong, missing or misordered line."""

from __future__ import annotations

import pytest

from tests.checks.command_blocks import ExpectedOutputError, command_blocks, mismatch

# `make ps` as Compose v2 printed it (columns padded with spaces, a `…` where it cut the command)
PS_OUTPUT = (
    "ops/compose.sh ps\n"
    "NAME                 IMAGE                            COMMAND                  SERVICE    CREATED"
    "          STATUS                    PORTS\n"
    'pgstack-backup-1     pgstack/backup:dev               "python -m pgbackup …"   backup     58 seconds ago'
    "   Up 51 seconds (healthy)\n"
    'pgstack-mcp-1        pgstack/mcp:dev                  "python -m pgmcp"        mcp        58 seconds ago'
    "   Up 51 seconds (healthy)   127.0.0.1:8080->8080/tcp\n"
    'pgstack-postgres-1   pgstack/postgres:18.6-bookworm   "docker-entrypoint.s…"   postgres   58 seconds ago'
    "   Up 57 seconds (healthy)   127.0.0.1:5432->5432/tcp\n"
)

PS_EXPECTED = (
    "NAME   IMAGE   COMMAND   SERVICE   CREATED   STATUS   PORTS\n"
    "...\n"
    'pgstack-postgres-1   <image>   "docker-entrypoint.s…"   postgres   <created>   Up <uptime> (healthy)'
    "   127.0.0.1:5432->5432/tcp\n"
)

PAGE = """\
# A page

```bash
make backups
```

```text
ID   AGE   SIZE   VERIFIED   DATABASES
<set-id>   <age>   <size>   yes   app,postgres
```
Some prose.
```bash
make ps
```
Prose between, so the next fence is not this block's output:
```text
not an expectation
```

1. A step in a list:
   ```bash
   ops/psql.sh postgres -tAc 'SELECT 1'
   ```
   ```text
   1
   ```
"""


def test_the_real_output_of_make_ps_matches_its_expectation() -> None:
    assert mismatch(PS_EXPECTED, PS_OUTPUT) is None


@pytest.mark.parametrize(
    ("expected", "why"),
    [
        (PS_EXPECTED.replace("pgstack-postgres-1", "pgstack_postgres_1"), "Compose v1's container name"),
        (PS_EXPECTED.replace("(healthy)", "(unhealthy)"), "a different word"),
        (PS_EXPECTED + "pgstack-restore-1   <image>   <command>   restore\n", "a line that is not printed"),
        ("pgstack-postgres-1 <rest>\npgstack-backup-1 <rest>\n", "lines in the wrong order"),
        ("pgstack-postgres-1\n", "a prefix is not a whole line"),
        ("Up <uptime> (healthy)\n", "a middle part is not a whole line"),
    ],
    ids=["v1-name", "word", "missing", "order", "prefix", "middle"],
)
def test_a_wrong_expectation_fails_and_says_which_line(expected: str, why: str) -> None:
    problem = mismatch(expected, PS_OUTPUT)
    assert problem is not None, why
    assert "not found" in problem


def test_placeholders_need_text_and_whitespace_runs_are_equal() -> None:
    printed = "backup set 20261202T035159Z: verified, 345324 bytes in 0.7 s\n"
    assert mismatch("backup set <set-id>: verified, <bytes> bytes in <duration>\n", printed) is None
    assert mismatch("a b\n", "a      b\n") is None
    assert mismatch("set <id>: ok\n", "set : ok\n") is not None, "a placeholder stands for some text, not none"
    assert mismatch("unhealthy: the newest set ... old\n", "unhealthy: the newest set is 7300 s old\n") is None


@pytest.mark.parametrize("expected", ["<anything>\n", "...\n", "<a> ... <b>\n", "\n\n"])
def test_an_expectation_without_literal_text_is_refused(expected: str) -> None:
    with pytest.raises(ExpectedOutputError):
        mismatch(expected, PS_OUTPUT)


def test_a_text_fence_belongs_to_the_bash_block_right_before_it_only() -> None:
    blocks = command_blocks(PAGE)
    assert [block.commands for block in blocks] == [
        "make backups\n",
        "make ps\n",
        "ops/psql.sh postgres -tAc 'SELECT 1'\n",
    ]
    assert blocks[0].expected == PAGE.split("```text\n")[1].split("```")[0]
    assert blocks[1].expected is None, "prose stands between the block and the text fence"
    assert blocks[2].expected == "1\n", "indented fences in a list are read without their indentation"
    assert [block.line for block in blocks] == [3, 12, 21]
