"""One structured audit line per tool call, on the `pgmcp.audit` logger.

Fields: `key` (the API key's name, never the key; for an OAuth token `oauth:<client>/<subject>`), `subject` and
`client_id` (an OAuth token's `sub` and `client_id`), `tool`, `fingerprint` (pglast's statement fingerprint),
`statement` (the SQL text, cut to `STATEMENT_CHARS`), `params` (how many bound parameters, never their values),
`rows`, `bytes`, `ms`, `outcome` (`ok` or an error kind), `rule` (the guard rule that rejected the statement),
`sqlstate`. The record carries them as `record.audit`; the JSON formatter (`pgmcp.logs`) writes them as one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

audit_logger = logging.getLogger("pgmcp.audit")

STATEMENT_CHARS = 2000


@dataclass(slots=True)
class AuditRecord:
    """What one tool call did; filled in as the call proceeds, written once at its end."""

    key: str
    tool: str
    subject: str | None = None
    client_id: str | None = None
    fingerprint: str | None = None
    statement: str | None = None
    params: int | None = None
    rows: int | None = None
    bytes: int | None = None
    ms: float | None = None
    outcome: str = "ok"
    rule: str | None = None
    sqlstate: str | None = None

    def note_statement(self, statement: str) -> None:
        self.statement = statement if len(statement) <= STATEMENT_CHARS else statement[:STATEMENT_CHARS] + "…"

    def fields(self) -> dict[str, Any]:
        return {name: value for name in self.__slots__ if (value := getattr(self, name)) is not None}


def write(record: AuditRecord) -> None:
    level = logging.INFO if record.outcome == "ok" else logging.WARNING
    audit_logger.log(
        level, "tool call %s %s by %s", record.tool, record.outcome, record.key, extra={"audit": record.fields()}
    )


__all__ = ["STATEMENT_CHARS", "AuditRecord", "audit_logger", "write"]
