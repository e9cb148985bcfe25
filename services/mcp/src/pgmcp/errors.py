"""The server's error hierarchy and the exit status of each CLI failure (one place, as pgBackRest's error.yaml).

Two families:
- startup failures (`ConfigError`, `StartupRefused`, `DatabaseUnreachable`): the process exits with the status
  listed in `EXIT_STATUS`, printing one line per problem;
- tool-call failures (`CallError` and its subclasses): turned into an MCP tool error (`isError: true`) whose
  text says what failed, the SQLSTATE when there is one, and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence


class PgMcpError(Exception):
    """Base class of every error this package raises on purpose."""


# -- startup ------------------------------------------------------------------------------------------------


class ConfigError(PgMcpError):
    """The configuration is invalid; `problems` lists every bad value, one actionable line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in self.problems))


class StartupRefused(PgMcpError):
    """The server will not start: its database role is too privileged (ROLE layer), or a runtime check failed."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("refusing to start:\n" + "\n".join(f"  - {problem}" for problem in self.problems))


class DatabaseUnreachable(PgMcpError):
    """The database could not be reached at startup within the startup timeout, or refused our credentials."""


EXIT_STATUS: dict[type[PgMcpError], int] = {
    ConfigError: 2,
    StartupRefused: 3,
    DatabaseUnreachable: 4,
}
"""Exit status of `python -m pgmcp` per failure; anything else that escapes is a bug and exits 1."""


def exit_status(error: PgMcpError) -> int:
    for kind, status in EXIT_STATUS.items():
        if isinstance(error, kind):
            return status
    return 1


# -- tool calls ---------------------------------------------------------------------------------------------


class CallError(PgMcpError):
    """A tool call failed in a way the model can act on; `kind` labels metrics and the audit line."""

    kind = "error"

    def __init__(self, message: str, *, sqlstate: str | None = None, rule: str | None = None) -> None:
        self.message = message
        self.sqlstate = sqlstate
        self.rule = rule
        super().__init__(message)


class InvalidArgument(CallError):
    """An argument is out of range or names something that does not exist (schema, table)."""

    kind = "invalid_argument"


class QueryRejected(CallError):
    """The read-only guard refused the statement before it reached the database; `rule` names why."""

    kind = "rejected"


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
    "InvalidArgument",
    "PgMcpError",
    "QueryRejected",
    "QueryTimeout",
    "StartupRefused",
    "exit_status",
]
