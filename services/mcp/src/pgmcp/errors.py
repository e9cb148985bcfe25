"""The server's error hierarchy and the exit status of each CLI failure (one place, as pgBackRest's error.yaml).

Two families:
- startup failures (`ConfigError`, `StartupRefused`, `DatabaseUnreachable`): the process exits with the status
  listed in `EXIT_STATUS` (an `ExitCode`), printing one item per problem with its `hint:` lines;
- tool-call failures (`CallError` and its subclasses): turned into an MCP tool error (`isError: true`) whose
  text says what failed, the SQLSTATE when there is one, and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class PgMcpError(Exception):
    """Base class of every error this package raises on purpose."""


def _listed(problems: Sequence[str]) -> str:
    """One `  - ` item per problem; its `hint:` lines (and any other continuation) indented under it."""
    return "\n".join("  - " + problem.replace("\n", "\n    ") for problem in problems)


# -- startup ------------------------------------------------------------------------------------------------


class ConfigError(PgMcpError):
    """The configuration is invalid; `problems` lists every bad value, one actionable line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + _listed(self.problems))


class StartupRefused(PgMcpError):
    """The server will not start: its database role is too privileged (ROLE layer), or a runtime check failed."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("refusing to start:\n" + _listed(self.problems))


class DatabaseUnreachable(PgMcpError):
    """The database could not be reached at startup within the startup timeout, or refused our credentials."""


class ExitCode(IntEnum):
    """Exit statuses of `python -m pgmcp`, one meaning each and the same numbers as pgbackup's
    (docs/conventions.md, where a test checks this table)."""

    OK = 0  # served and shut down cleanly, or healthy (`healthcheck`)
    UNHEALTHY = 1  # `healthcheck` only: /healthz did not answer 200 (Docker reserves 2)
    USAGE = 2  # argparse: unknown command or option
    CONFIG = 3  # invalid configuration, unknown MCP_* variable included; every problem is listed
    STARTUP = 4  # startup refused: the role audit failed, or a runtime check did
    UNREACHABLE = 5  # the database did not answer within MCP_STARTUP_TIMEOUT, or refused the credentials
    INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE)


EXIT_STATUS: dict[type[PgMcpError], ExitCode] = {
    ConfigError: ExitCode.CONFIG,
    StartupRefused: ExitCode.STARTUP,
    DatabaseUnreachable: ExitCode.UNREACHABLE,
}
"""Exit status of `python -m pgmcp` per failure; anything else that escapes is a bug (INTERNAL)."""


def exit_status(error: PgMcpError) -> ExitCode:
    for kind, status in EXIT_STATUS.items():
        if isinstance(error, kind):
            return status
    return ExitCode.INTERNAL


# -- tool calls ---------------------------------------------------------------------------------------------


class CallError(PgMcpError):
    """A tool call failed in a way the model can act on; `kind` labels metrics and the audit line."""

    kind = "error"

    def __init__(self, message: str, *, sqlstate: str | None = None, rule: str | None = None) -> None:
        self.message = message
        self.sqlstate = sqlstate
        self.rule = rule
        super().__init__(message)


class Forbidden(CallError):
    """The caller's API key or access token does not allow this tool."""

    kind = "forbidden"


class InvalidArgument(CallError):
    """An argument is out of range or names something that does not exist (schema, table)."""

    kind = "invalid_argument"


RULES = frozenset(
    {
        "syntax",
        "too_large",
        "not_single_statement",
        "statement_type",
        "locking_clause",
        "into_clause",
        "data_modifying_cte",
        "explain_analyze",
        "explain_option",
        "function_denied",
        "function_volatile",
        "function_unknown",
        "node_type",
        "schema_scope",
    }
)
"""The stable ids of the guard's rules: a `QueryRejected` names one, and so do the metrics and the audit line."""


class QueryRejected(CallError):
    """The read-only guard refused the statement before it reached the database.

    `rule` is one of `RULES`, `what` says what was refused and `hint` what to write instead;
    the message shown to the model holds all three. `fingerprint` is the statement's pglast fingerprint when it
    parsed (for the audit log), else None.
    """

    kind = "rejected"

    def __init__(self, rule: str, what: str, hint: str, *, fingerprint: str | None = None) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown guard rule {rule!r}: expected one of {sorted(RULES)}")
        super().__init__(
            f"query rejected: {what}\nhint: {hint}\nrule: {rule} (this server only runs read-only queries)", rule=rule
        )
        self.rule: str = rule
        self.what = what
        self.hint = hint
        self.fingerprint = fingerprint

    def again(self) -> QueryRejected:
        """A fresh copy, without this one's traceback, to raise once more (memoised verdicts)."""
        return QueryRejected(self.rule, self.what, self.hint, fingerprint=self.fingerprint)


class QueryTimeout(CallError):
    """The statement ran past the operator's timeout and was cancelled."""

    kind = "timeout"


class DatabaseUnavailable(CallError):
    """Transient: the database is down, restarting, or out of connections. Retrying later will work."""

    kind = "unavailable"


class DatabaseFailed(CallError):
    """The database refused or failed the statement (syntax, permissions, data errors): fix the query."""

    kind = "database_error"


__all__ = [
    "EXIT_STATUS",
    "CallError",
    "ConfigError",
    "DatabaseFailed",
    "DatabaseUnavailable",
    "DatabaseUnreachable",
    "ExitCode",
    "InvalidArgument",
    "PgMcpError",
    "QueryRejected",
    "QueryTimeout",
    "RULES",
    "StartupRefused",
    "exit_status",
]
