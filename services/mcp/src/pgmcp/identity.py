"""Who is calling, and what they may do: the `Identity` an HTTP request authenticated as (an API key or an
OAuth access token), set in `CALLER` by `pgmcp.http.Authenticate` around the request.

Permissions are the same three things whichever credential brought them: the tools the caller may call, the
schemas it may read (`pgmcp.scope`), and a row limit lower than the server's. An API key names them in the
key file (`tools=`, `schemas=`, `max_rows=`); an access token brings OAuth scopes, mapped to tools here
(`SCOPES`) and to schemas by `MCP_OAUTH_SCHEMA_SCOPES` (`pg:schema:<group>`). The name is what the audit log,
the metrics and the per-caller concurrency limit use: the key's name, or `oauth:<client id>/<subject>` for a
token (`oauth:<subject>` when they are the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

TOOLS = ("list_schemas", "list_tables", "describe_table", "search_schema", "query", "explain")
"""Every tool the server offers (`pgmcp.tools` registers exactly these, in this order)."""

SCOPE_READ = "pg:read"
SCHEMA_SCOPE_PREFIX = "pg:schema:"
SCOPE_EXPLAIN = "pg:explain"
SCOPES: dict[str, frozenset[str]] = {
    SCOPE_READ: frozenset(TOOLS) - {"explain"},
    SCOPE_EXPLAIN: frozenset({"explain"}),
}
"""OAuth scope -> the tools it allows: `pg:read` for discovery and `query`, `pg:explain` for `explain`."""


def scope_for(tool: str) -> str:
    """The OAuth scope a token needs to call `tool`."""
    return next(scope for scope, tools in SCOPES.items() if tool in tools)


def tools_for_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The tools a token with these scopes may call (unknown scopes grant nothing)."""
    return frozenset().union(*(SCOPES.get(scope, frozenset()) for scope in scopes))


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller."""

    name: str  # audit log, metrics, concurrency limit
    kind: str  # "key" or "oauth"
    tools: frozenset[str] | None = None  # None: every tool
    max_rows: int | None = None  # lower than the server's, or None
    schemas: tuple[str, ...] | None = None  # None: every schema the role may read; else only these
    subject: str | None = None  # OAuth: the token's `sub`
    client_id: str | None = None  # OAuth: `client_id` (or `azp`)
    scopes: tuple[str, ...] = ()  # OAuth: the token's scopes, as granted

    def allows(self, tool: str) -> bool:
        return self.tools is None or tool in self.tools

    def row_limit(self, server_max_rows: int) -> int:
        return server_max_rows if self.max_rows is None else min(self.max_rows, server_max_rows)


CALLER: ContextVar[Identity | None] = ContextVar("pgmcp_caller", default=None)
"""The identity of the HTTP request being served; None in-process and over stdio (the server's principal)."""

__all__ = [
    "CALLER",
    "SCHEMA_SCOPE_PREFIX",
    "SCOPES",
    "SCOPE_EXPLAIN",
    "SCOPE_READ",
    "TOOLS",
    "Identity",
    "scope_for",
    "tools_for_scopes",
]
