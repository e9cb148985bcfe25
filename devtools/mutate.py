"""`make mutate`: mutation testing with mutmut over the code whose every branch is a security or integrity claim:
the guard's decisions, the function policy, the executor's result limits and the backup checksum/manifest checks,
each driven by the fast-tier tests that pin it. Never part of `make test` (it takes minutes).

mutmut derives a module's name from its path and imports the mutated copy from `mutants/src`, so the run happens
in a staged tree under .state/mutate/: both service packages under `src/`, plus the tests, devtools and the
configuration files the tests read. What is mutated and which tests run are `[tool.mutmut]` in pyproject.toml.

The report (reports/mutate.json and reports/mutate.txt) gives the score per module and every surviving mutant
with its diff. Survivors judged equivalent (no input can tell them from the original) are listed, each with the
reason, in tests/mutation_equivalents.toml; the run exits 1 when a survivor in a must-kill module is not on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from mutmut.stats import status_by_exit_code

from devtools.native_pg import DEFAULT_DEMO_ORDERS
from devtools.paths import REPO

STAGE = REPO / ".state" / "mutate"
REPORT_JSON = REPO / "reports" / "mutate.json"
REPORT_TEXT = REPO / "reports" / "mutate.txt"
EQUIVALENTS = REPO / "tests" / "mutation_equivalents.toml"
# staged next to src/: what the selected tests import or read
STAGED = ("tests", "devtools", "compose", "pyproject.toml")
PACKAGES = {"pgmcp": REPO / "services/mcp/src/pgmcp", "pgbackup": REPO / "services/backup/src/pgbackup"}
# modules where a survivor that is not a reviewed equivalent fails the run
MUST_KILL = ("pgmcp.guard", "pgbackup.verify", "pgbackup.manifest")


def stage() -> None:
    """A fresh staged tree: the sources as mutmut expects them (src/<package>), the rest beside them."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    (STAGE / "src").mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for name, path in PACKAGES.items():
        shutil.copytree(path, STAGE / "src" / name, ignore=ignore)
    for name in STAGED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, STAGE / name, ignore=ignore)
        else:
            shutil.copy2(source, STAGE / name)


def run_mutmut(max_children: int, patterns: list[str]) -> int:
    """`mutmut run` in the staged tree, its progress on this terminal; its exit status. One native PostgreSQL per
    concurrent test run, started once (tests/fixtures/pg.py: SHARED_SERVER_ENV), not one per mutant."""
    from devtools.native_pg import NativePostgres
    from tests.fixtures.pg import SHARED_SERVER_ENV

    listing = STAGE / "shared-pg.json"
    with contextlib.ExitStack() as servers:
        print(f"==> starting {max_children} native PostgreSQL servers for the test runs", file=sys.stderr)
        started = [servers.enter_context(NativePostgres(demo_orders=DEFAULT_DEMO_ORDERS)) for _ in range(max_children)]
        listing.write_text(json.dumps([server.describe() for server in started]))
        run = mutmut("run", "--max-children", str(max_children), *patterns, env={SHARED_SERVER_ENV: str(listing)})
        return run.returncode


def results() -> dict[str, str]:
    """Every mutant's status, from the .meta files mutmut writes beside each mutated module."""
    statuses: dict[str, str] = {}
    for meta in sorted((STAGE / "mutants" / "src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data["exit_code_by_key"].items():
            statuses[name] = status_by_exit_code[code]
    return statuses


def module_of(mutant: str) -> str:
    """pgmcp.guard.x_check__mutmut_3 -> pgmcp.guard (mutmut names functions x_<name>, methods xǁClassǁ<name>)."""
    parts = mutant.split(".")
    for index, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:index])
    return mutant.rpartition(".")[0]


def mutmut(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """The venv's mutmut in the staged tree, without PYTHONPATH (the staged sources must win over the checkout)."""
    clean = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    return subprocess.run(command, cwd=STAGE, env={**clean, **(env or {})}, capture_output=capture, text=True)


def show(mutant: str) -> str:
    shown = mutmut("show", mutant, capture=True)
    return shown.stdout.strip() or shown.stderr.strip()


def load_equivalents() -> dict[str, str]:
    """Reviewed equivalent mutants: name -> why no input can tell the mutant from the original."""
    data = tomllib.loads(EQUIVALENTS.read_text())
    return {name: entry["reason"] for name, entry in data.get("mutant", {}).items()}


def report(statuses: dict[str, str], seconds: float) -> tuple[dict[str, Any], list[str]]:
    equivalents = load_equivalents()
    modules: dict[str, Counter[str]] = {}
    for name, status in statuses.items():
        modules.setdefault(module_of(name), Counter())[status] += 1
    survivors = sorted(name for name, status in statuses.items() if status in ("survived", "suspicious"))
    unexplained = [name for name in survivors if module_of(name) in MUST_KILL and name not in equivalents]
    stale = sorted(set(equivalents) - set(statuses))
    summary: dict[str, Any] = {"seconds": round(seconds), "modules": {}, "survivors": {}, "must_kill": MUST_KILL}
    for module, counts in sorted(modules.items()):
        # a timeout or a crash is the tests noticing the mutant too
        detected = counts["killed"] + counts["timeout"] + counts["segfault"]
        tested = detected + counts["survived"] + counts["suspicious"]
        summary["modules"][module] = {**dict(counts), "score": round(100 * detected / tested, 1) if tested else None}
    for name in survivors:
        summary["survivors"][name] = {"equivalent": equivalents.get(name), "diff": show(name)}
    problems = [f"{name}: survived in a must-kill module and is not a reviewed equivalent" for name in unexplained]
    problems += [f"{name}: listed in {EQUIVALENTS.name} but no longer generated (remove it)" for name in stale]
    return summary, problems


def render(summary: dict[str, Any], problems: list[str]) -> str:
    lines = [f"mutation testing (mutmut), {summary['seconds']} s", ""]
    lines.append(f"{'module':<22} {'killed':>7} {'survived':>9} {'timeout':>8} {'no tests':>9} {'score':>7}")
    for module, counts in summary["modules"].items():
        score = "-" if counts["score"] is None else f"{counts['score']:.1f}%"
        lines.append(
            f"{module:<22} {counts.get('killed', 0):>7} {counts.get('survived', 0):>9} {counts.get('timeout', 0):>8} "
            f"{counts.get('no tests', 0):>9} {score:>7}"
        )
    lines += ["", f"survivors (must-kill modules: {', '.join(summary['must_kill'])}):"]
    for name, survivor in summary["survivors"].items():
        verdict = f"equivalent: {survivor['equivalent']}" if survivor["equivalent"] else "NOT KILLED"
        lines += ["", f"## {name} ({verdict})", survivor["diff"]]
    if problems:
        lines += ["", "problems:", *(f"  {problem}" for problem in problems)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.mutate", description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--report-only", action="store_true", help="report the last run again, without running")
    parser.add_argument(
        "patterns", nargs="*", metavar="PATTERN", help="only the mutants matching these (mutmut names: 'pgmcp.guard.*')"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if not args.report_only:
        print(f"==> staging the sources and tests in {STAGE}", file=sys.stderr)
        stage()
        print(
            "==> mutmut run (progress: mutants done/total, then killed, no tests, timeout, survived)", file=sys.stderr
        )
        status = run_mutmut(args.max_children, args.patterns)
        if status != 0:
            print(f"mutate: mutmut run exited with status {status}; see the output above", file=sys.stderr)
            return status
    statuses = results()
    if not statuses:
        print(f"mutate: no mutants under {STAGE / 'mutants'}: run `make mutate` first", file=sys.stderr)
        return 1
    summary, problems = report(statuses, time.monotonic() - started)
    REPORT_JSON.parent.mkdir(parents=True, exist_ok=True)
    REPORT_JSON.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    text = render(summary, problems)
    REPORT_TEXT.write_text(text)
    print(text.split("\nsurvivors")[0])
    print(f"report: {REPORT_TEXT} ({len(summary['survivors'])} survivors, with their diffs)")
    if problems:
        print("mutate: " + "\n  ".join(["failed:", *problems]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
