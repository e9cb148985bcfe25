"""`python -m pgmcp api-key create|list|revoke`: what `make api-key`, `make api-keys` and `make api-key-revoke` run
on the host, against the key file the server reads (`compose/secrets/mcp_api_keys` in the stack).

    create NAME [--scopes query,explain|pg:read,...] [--schemas a,b] [--max-rows N] [--expires 2027-01-31|90d]
                                prints the new key once; the file keeps only its SHA-256
    list [--metrics URL|FILE]...  name, state, tools, row limit, expiry, creation and last use (the latest
                                `pgmcp_api_key_last_used_timestamp_seconds` of the servers, since they started)
    revoke NAME                 marks the key revoked: its user gets 401 saying so, within a second or two

The server picks up every change by itself (`pgmcp.keys.KeyStore`): nothing restarts.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pgmcp import keys
from pgmcp.errors import ExitCode
from pgmcp.identity import SCOPES, TOOLS

_RELATIVE = re.compile(r"^(\d{1,5})([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_LAST_USED = re.compile(r'^pgmcp_api_key_last_used_timestamp_seconds\{key="([^"]+)"\} ([0-9.e+]+)$')
METRICS_TIMEOUT_S = 3.0


class UsageError(ValueError):
    """A bad argument: exit status 2 with the message."""


def parse_scopes(raw: str) -> frozenset[str] | None:
    """Tool names and OAuth scope names (`pg:read` = every tool but explain), comma-separated; empty: every tool."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        return None
    tools: set[str] = set()
    for item in items:
        if item in SCOPES:
            tools |= SCOPES[item]
        elif item in TOOLS:
            tools.add(item)
        else:
            raise UsageError(
                f"SCOPES: {item!r} is neither a tool ({', '.join(TOOLS)}) nor a scope ({', '.join(SCOPES)})"
            )
    return frozenset(tools)


def parse_expiry(raw: str, now: datetime) -> datetime | None:
    """`90d`, `12h`, `2w` from now, or an ISO-8601 date or time; empty: never."""
    value = raw.strip()
    if not value:
        return None
    relative = _RELATIVE.match(value)
    if relative:
        return now + int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        return keys.parse_moment(value)
    except ValueError:
        raise UsageError(
            f"EXPIRES={value!r} is not a date (2027-01-31), a time (2027-01-31T18:00Z) or 90d/12h/2w"
        ) from None


def parse_rows(raw: str) -> int | None:
    value = raw.strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"MAX_ROWS={value!r} is not a whole number of rows, at least 1")
    return int(value)


def last_used(sources: Sequence[str]) -> tuple[dict[str, datetime], str | None]:
    """Each key's last use as the servers count it: the latest over `sources` (a /metrics URL, or a file of
    what one served: one per replica), or an empty map and why it is unknown."""
    if not sources:
        return {}, "no server's metrics to read (is the stack's mcp running?)"
    found: dict[str, datetime] = {}
    for source in sources:
        try:
            if source.startswith(("http://", "https://")):
                with urllib.request.urlopen(source, timeout=METRICS_TIMEOUT_S) as response:  # noqa: S310 (loopback)
                    text = response.read().decode("utf-8", "replace")
            else:
                text = Path(source).read_text(encoding="utf-8", errors="replace")
        except (OSError, urllib.error.URLError) as exc:
            return {}, f"the server at {source} did not answer ({getattr(exc, 'reason', exc)})"
        for line in text.splitlines():
            match = _LAST_USED.match(line.strip())
            if match and float(match.group(2)) > 0:
                when = datetime.fromtimestamp(float(match.group(2)), UTC)
                found[match.group(1)] = max(when, found.get(match.group(1), when))
    return found, None


def _table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns}
    lines = ["  ".join(column.ljust(widths[column]) for column in columns).rstrip()]
    lines += ["  ".join(row[column].ljust(widths[column]) for column in columns).rstrip() for row in rows]
    return "\n".join(lines)


def run(argv: Sequence[str], now: datetime | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgmcp api-key", description="manage the server's API keys")
    parser.add_argument("action", choices=["create", "list", "revoke"])
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument(
        "--file", type=Path, required=True, help="the key file (the stack's: compose/secrets/mcp_api_keys)"
    )
    parser.add_argument("--scopes", default="", help="tools or scopes the key may use, comma-separated (default: all)")
    parser.add_argument("--schemas", default="", help="the only schemas the key may read, comma-separated")
    parser.add_argument("--max-rows", default="", help="a row limit lower than the server's")
    parser.add_argument("--expires", default="", help="2027-01-31, 2027-01-31T18:00Z, or 90d / 12h / 2w from now")
    parser.add_argument(
        "--metrics",
        action="append",
        default=[],
        help="list: a server's /metrics URL, or a file of what it served (once per replica), for each key's last use",
    )
    args = parser.parse_args(argv)
    moment = now or datetime.now(UTC).replace(microsecond=0)
    path: Path = args.file
    if not path.exists():
        raise UsageError(f"no key file at {path}: `make up` creates it (with a `default` key)")
    if args.action in ("create", "revoke") and not args.name:
        raise UsageError(f"{args.action} needs the key's name: NAME=<name>")
    if args.action == "create":
        secret = keys.create(
            path,
            args.name,
            tools=parse_scopes(args.scopes),
            schemas=tuple(item.strip() for item in args.schemas.split(",") if item.strip()) or None,
            max_rows=parse_rows(args.max_rows),
            expires=parse_expiry(args.expires, moment),
            now=moment,
            known_tools=frozenset(TOOLS),
        )
        print(
            f"created the API key {args.name!r}; it is shown only now, the server keeps its SHA-256:", file=sys.stderr
        )
        print(secret)
        print("clients send it as `Authorization: Bearer <key>`; the server accepts it within seconds", file=sys.stderr)
        return ExitCode.OK
    if args.action == "revoke":
        entry = keys.revoke(path, args.name, now=moment)
        print(f"revoked the API key {entry.name!r}: its requests get 401 (revoked) within seconds")
        return ExitCode.OK
    entries = keys.parse_entries(path.read_text(encoding="utf-8"))
    if not entries:
        print(f"{path} holds no key: `make api-key NAME=...` creates one")
        return ExitCode.OK
    used, unknown = last_used(args.metrics)
    rows = keys.describe(entries, moment)
    for row in rows:
        when = used.get(row["name"])
        row["last_used"] = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else ("?" if unknown else "-")
    print(_table(rows))
    if unknown:
        print(f"last use unknown: {unknown}", file=sys.stderr)
    else:
        print("last use: as the server counted it since it started ('-': not used since)", file=sys.stderr)
    return ExitCode.OK


def main(argv: Sequence[str]) -> int:
    try:
        return run(argv)
    except UsageError as exc:
        print(f"pgmcp api-key: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (ValueError, OSError) as exc:
        print(f"pgmcp api-key: {exc}", file=sys.stderr)
        return ExitCode.CONFIG


__all__ = ["main", "parse_expiry", "parse_scopes", "run"]
