"""The history of restore drills: the JSON reports under BACKUP_DIR/drills, kept bounded, read back and rendered.

`make drills` lists them (date, set, verdict, RTO, RPO, scratch) and writes the latest as Markdown and HTML with the
RTO/RPO trend of the drills before it (a table and a sparkline; an inline SVG chart in HTML). Reports are named
`<start>-<set>.json`, so their names sort by start; the newest `REPORTS_KEPT` are kept.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgbackup.scratch import human_bytes

logger = logging.getLogger(__name__)

REPORTS_KEPT = 100
"""Drill reports kept in BACKUP_DIR/drills: about three months of daily drills."""
TREND_LENGTH = 30
"""Drills shown in the trend of the latest report."""
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class DrillEntry:
    """One past drill as the history shows it."""

    name: str  # the report's file name
    started_at: str
    set_id: str
    verdict: str  # passed, over limit (verified, RTO or RPO too long), failed
    rto_seconds: float | None
    rpo_seconds: float | None
    max_rto_seconds: float | None
    max_rpo_seconds: float | None
    scratch: str  # memory, disk, or - (a report from before the choice, or a drill that never got that far)
    scheduled: bool
    failure: str | None  # the first failed check and its first line
    report: dict[str, Any]

    @classmethod
    def from_report(cls, name: str, data: dict[str, Any]) -> DrillEntry:
        failed = [check for check in data.get("checks", []) if not check.get("ok")]
        if data.get("passed"):
            verdict = "passed"
        elif data.get("verified"):
            verdict = "over limit"
        else:
            verdict = "failed"
        failure = None
        if failed:
            first = (str(failed[0].get("detail", "")).splitlines() or [""])[0]
            failure = f"{failed[0].get('name')}: {first}"
        scratch = data.get("scratch") or {}
        return cls(
            name=name,
            started_at=str(data["started_at"]),
            set_id=str(data["set_id"]),
            verdict=verdict,
            rto_seconds=_number(data.get("rto_seconds")),
            rpo_seconds=_number(data.get("rpo_seconds")),
            max_rto_seconds=_number(data.get("max_rto_seconds")),
            max_rpo_seconds=_number(data.get("max_rpo_seconds")),
            scratch=str(scratch.get("kind", "-")),
            scheduled=bool(data.get("scheduled")),
            failure=failure,
            report=data,
        )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def report_files(directory: Path) -> list[Path]:
    """The drill reports in `directory`, oldest first (their names start with the drill's start time)."""
    try:
        # not the hidden temporary files of write_json_atomic (pathlib's glob matches names starting with a dot)
        return sorted(path for path in directory.glob("*.json") if path.is_file() and not path.name.startswith("."))
    except OSError:
        return []


def read_history(directory: Path) -> list[DrillEntry]:
    """Every readable report, oldest first; an unreadable one is left out with a warning."""
    entries = []
    for path in report_files(directory):
        try:
            entries.append(DrillEntry.from_report(path.name, json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("unable to read the drill report %s: %s", path, exc)
    return entries


def prune_reports(directory: Path, keep: int = REPORTS_KEPT) -> list[Path]:
    """Remove all but the newest `keep` reports; returns what it removed."""
    removed = report_files(directory)[:-keep] if keep > 0 else []
    for path in removed:
        try:
            path.unlink()
        except OSError as exc:
            logger.warning("unable to remove the old drill report %s: %s", path, exc)
    return removed


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def sparkline(values: list[float | None]) -> str:
    """One character per value, from ▁ (the lowest) to █ (the highest); `·` for a drill without the number."""
    present = [value for value in values if value is not None]
    if not present:
        return "·" * len(values)
    low, high = min(present), max(present)
    span = high - low
    marks = []
    for value in values:
        if value is None:
            marks.append("·")
        else:
            marks.append(SPARKS[0 if span == 0 else round((value - low) / span * (len(SPARKS) - 1))])
    return "".join(marks)


def render_table(entries: list[DrillEntry]) -> str:
    """The text `make drills` prints: newest first."""
    lines = [f"{'STARTED':<24} {'SET':<20} {'VERDICT':<10} {'RTO':>10} {'RPO':>10}  SCRATCH  BY"]
    for entry in reversed(entries):
        lines.append(
            f"{entry.started_at:<24} {entry.set_id:<20} {entry.verdict:<10} {_seconds(entry.rto_seconds):>10} "
            f"{_seconds(entry.rpo_seconds):>10}  {entry.scratch:<7}  {'schedule' if entry.scheduled else 'hand'}"
        )
        if entry.failure:
            lines.append(f"{'':<24} {entry.failure}")
    if not entries:
        lines.append("(no drill reports yet: `make restore-drill` runs one)")
    return "\n".join(lines)


def _trend(entries: list[DrillEntry]) -> list[DrillEntry]:
    return entries[-TREND_LENGTH:]


def render_markdown(entries: list[DrillEntry]) -> str:
    """The latest drill and the trend of the drills up to it, as Markdown."""
    if not entries:
        return "# Restore drills\n\nNo drill reports yet: `make restore-drill` runs one.\n"
    latest = entries[-1]
    trend = _trend(entries)
    lines = [
        "# Restore drills",
        "",
        f"## Latest: set {latest.set_id}, {latest.verdict.upper()}",
        "",
        "| | |",
        "|---|---|",
        f"| started | {latest.started_at} |",
        f"| set | {latest.set_id} |",
        f"| verdict | {latest.verdict} |",
        f"| RTO | {_seconds(latest.rto_seconds)} (limit {_seconds(latest.max_rto_seconds)}) |",
        f"| RPO | {_seconds(latest.rpo_seconds)} (limit {_seconds(latest.max_rpo_seconds)}) |",
        f"| scratch | {_scratch_text(latest)} |",
        f"| run by | {'BACKUP_DRILL_SCHEDULE' if latest.scheduled else 'hand (make restore-drill)'} |",
        f"| report | {latest.name} |",
        "",
        "| check | ok | detail |",
        "|---|---|---|",
    ]
    for check in latest.report.get("checks", []):
        detail = (str(check.get("detail", "")).splitlines() or [""])[0].replace("|", "\\|")
        lines.append(f"| {check.get('name')} | {'yes' if check.get('ok') else 'FAILED'} | {detail} |")
    lines += [
        "",
        f"## Trend: the last {len(trend)} drills, oldest first",
        "",
        f"- RTO `{sparkline([entry.rto_seconds for entry in trend])}` "
        f"({_range([entry.rto_seconds for entry in trend])})",
        f"- RPO `{sparkline([entry.rpo_seconds for entry in trend])}` "
        f"({_range([entry.rpo_seconds for entry in trend])})",
        "",
        "| started | set | verdict | RTO | RPO | scratch |",
        "|---|---|---|---|---|---|",
    ]
    for entry in trend:
        lines.append(
            f"| {entry.started_at} | {entry.set_id} | {entry.verdict} | {_seconds(entry.rto_seconds)} "
            f"| {_seconds(entry.rpo_seconds)} | {entry.scratch} |"
        )
    return "\n".join(lines) + "\n"


def _scratch_text(entry: DrillEntry) -> str:
    scratch = entry.report.get("scratch") or {}
    if not scratch:
        return "-"
    return (
        f"{scratch['kind']} ({scratch['directory']}): estimated {human_bytes(int(scratch['estimated_bytes']))}, "
        f"memory budget {human_bytes(int(scratch['memory_budget_bytes']))}"
    )


def _range(values: list[float | None]) -> str:
    present = [value for value in values if value is not None]
    if not present:
        return "no numbers"
    return f"{min(present):.1f} s to {max(present):.1f} s"


def _svg(values: list[float | None], limit: float | None, title: str) -> str:
    """A small line chart of `values` (seconds) with the limit as a dashed line."""
    width, height, pad = 600, 120, 10
    present = [value for value in values if value is not None]
    top = max([*present, limit or 0.0, 1e-9])
    step = (width - 2 * pad) / max(len(values) - 1, 1)

    def y(value: float) -> float:
        return height - pad - value / top * (height - 2 * pad)

    points = " ".join(
        f"{pad + index * step:.1f},{y(value):.1f}" for index, value in enumerate(values) if value is not None
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa" stroke="#ccc"/>',
    ]
    if limit:
        parts.append(
            f'<line x1="{pad}" y1="{y(limit):.1f}" x2="{width - pad}" y2="{y(limit):.1f}" stroke="#c00" '
            'stroke-dasharray="4 4"/>'
        )
    parts.append(f'<polyline fill="none" stroke="#06c" stroke-width="2" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(entries: list[DrillEntry]) -> str:
    """The same as render_markdown, as one self-contained HTML page with inline SVG charts."""
    escape = html.escape
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Restore drills</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}.failed{color:#c00}</style></head><body>\n"
    )
    if not entries:
        return head + "<h1>Restore drills</h1><p>No drill reports yet: <code>make restore-drill</code> runs one.</p>"
    latest = entries[-1]
    trend = _trend(entries)
    rows = [
        ("started", latest.started_at),
        ("set", latest.set_id),
        ("verdict", latest.verdict),
        ("RTO", f"{_seconds(latest.rto_seconds)} (limit {_seconds(latest.max_rto_seconds)})"),
        ("RPO", f"{_seconds(latest.rpo_seconds)} (limit {_seconds(latest.max_rpo_seconds)})"),
        ("scratch", _scratch_text(latest)),
        ("report", latest.name),
    ]
    body = [f"<h1>Restore drills</h1><h2>Latest: set {escape(latest.set_id)}, {escape(latest.verdict.upper())}</h2>"]
    body.append("<table>" + "".join(f"<tr><th>{k}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>")
    body.append("<h3>Checks</h3><table><tr><th>check</th><th>ok</th><th>detail</th></tr>")
    for check in latest.report.get("checks", []):
        detail = (str(check.get("detail", "")).splitlines() or [""])[0]
        ok = bool(check.get("ok"))
        body.append(
            f"<tr{'' if ok else ' class=failed'}><td>{escape(str(check.get('name')))}</td>"
            f"<td>{'yes' if ok else 'FAILED'}</td><td>{escape(detail)}</td></tr>"
        )
    body.append("</table>")
    body.append(f"<h2>Trend: the last {len(trend)} drills, oldest first</h2>")
    body.append("<h3>RTO (seconds; dashed: the limit)</h3>")
    body.append(_svg([entry.rto_seconds for entry in trend], latest.max_rto_seconds, "RTO of the last drills"))
    body.append("<h3>RPO (seconds; dashed: the limit)</h3>")
    body.append(_svg([entry.rpo_seconds for entry in trend], latest.max_rpo_seconds, "RPO of the last drills"))
    body.append("<table><tr><th>started</th><th>set</th><th>verdict</th><th>RTO</th><th>RPO</th><th>scratch</th></tr>")
    for entry in trend:
        body.append(
            f"<tr><td>{escape(entry.started_at)}</td><td>{escape(entry.set_id)}</td><td>{escape(entry.verdict)}</td>"
            f"<td>{_seconds(entry.rto_seconds)}</td><td>{_seconds(entry.rpo_seconds)}</td>"
            f"<td>{escape(entry.scratch)}</td></tr>"
        )
    body.append("</table>")
    return head + "\n".join(body) + "\n</body></html>\n"


__all__ = ["DrillEntry", "prune_reports", "read_history", "render_html", "render_markdown", "render_table"]
