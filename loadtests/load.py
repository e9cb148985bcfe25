"""`make load`: a headless Locust run against the MCP endpoint with pass/fail thresholds; reports in reports/.

By default it starts a private native PostgreSQL 18 (10k orders) and `python -m pgmcp` on free loopback ports.
With `--url http://127.0.0.1:8080/mcp` it loads a running server (the stack) instead, with the keys in
MCP_API_KEYS (comma-separated) or, failing that, the `default` key of compose/secrets/mcp_api_keys; mind that
server's per-key concurrency limit (8 by default) when choosing --users.

Exit status: locust's, which is 1 when a threshold (failure ratio, p95, requests/s) is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from devtools.paths import REPO
from loadtests.harness import local_target

REPORTS = REPO / "reports"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@contextlib.contextmanager
def target(url: str | None, users: int) -> Iterator[tuple[str, list[str]]]:
    """(base URL, keys) of the server under load."""
    if url is not None:
        keys = [key for key in os.environ.get("MCP_API_KEYS", "").split(",") if key]
        if not keys:
            secret = REPO / "compose" / "secrets" / "mcp_api_keys"
            keys = [
                line.split(":", 1)[1].strip() for line in secret.read_text().splitlines() if line.startswith("default:")
            ]
        if not keys:
            raise SystemExit("load: no API key: set MCP_API_KEYS or create compose/secrets/mcp_api_keys (make up)")
        yield url.removesuffix("/mcp"), keys
        return
    with local_target(clients=users) as local:
        yield local.server.base, local.keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="load a running server (e.g. the stack's http://127.0.0.1:8080/mcp)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--run-time", default="30s")
    parser.add_argument("--max-failure-ratio", default="0.01")
    parser.add_argument("--max-p95-ms", default="250")
    parser.add_argument("--min-rps", default="100")
    args = parser.parse_args(argv)
    REPORTS.mkdir(exist_ok=True)
    with target(args.url, args.users) as (base, keys):
        env = {
            **os.environ,
            "MCP_API_KEYS": ",".join(keys),
            "LOAD_MAX_FAILURE_RATIO": args.max_failure_ratio,
            "LOAD_MAX_P95_MS": args.max_p95_ms,
            "LOAD_MIN_RPS": args.min_rps,
        }
        command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.run_time, "--host", base,
            "--csv", str(REPORTS / "load-mcp"), "--html", str(REPORTS / "load-mcp.html"),
        ]  # fmt: skip
        print(f"locust: {args.users} users for {args.run_time} against {base}/mcp", file=sys.stderr)
        result = subprocess.run(command, env=env, cwd=REPO, check=False)
    print(f"reports: {REPORTS / 'load-mcp_stats.csv'}, {REPORTS / 'load-mcp.html'}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
