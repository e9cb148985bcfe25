"""Schemas a caller may read: an API key's `schemas=` (`pgmcp.keys`) or an OAuth token's schema-group scopes
(`MCP_OAUTH_SCHEMA_SCOPES`). PostgreSQL's grants stay the real limit, the server's role's, shared by every
caller; this narrows one caller further, three ways at once:

- the discovery tools and resources show only those schemas (`pgmcp.schema.SchemaReader`);
- `query` and `explain` run with `search_path` set to them for the call, so an unqualified name cannot resolve
  anywhere else (pg_catalog is still searched first, as always; the reader has no temporary schema);
- a statement that writes another schema's name before a relation, function or type is refused before it
  runs (rule `schema_scope`), and so are the statistics views, which show sample values of every column the
  role may read (`STATISTICS_VIEWS`).

What is not narrowed, by design: views and SQL functions in an allowed schema run their own definitions, as
their owner wrote them (the same rule as for grants: docs/security.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from pgmcp.errors import QueryRejected
from pgmcp.guard import ValidatedQuery
from pgmcp.identity import Identity

CATALOG_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
"""Always readable: what every role sees of the catalogue (names and types, no rows of other schemas)."""
STATISTICS_VIEWS = frozenset(
    {"pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext_data"}
)


def visible(identity: Identity | None, configured: Sequence[str]) -> list[str] | None:
    """The schemas the discovery tools show this caller: `MCP_SCHEMAS` (empty: every one) narrowed to the
    caller's; None for every schema."""
    if identity is None or identity.schemas is None:
        return list(configured) or None
    return [name for name in identity.schemas if not configured or name in configured]


def search_path(identity: Identity | None) -> tuple[str, ...] | None:
    """The search_path of this caller's statements, or None for the role's own."""
    return None if identity is None or identity.schemas is None else identity.schemas


def check(identity: Identity | None, query: ValidatedQuery) -> None:
    """Refuse a statement that reaches outside the caller's schemas by name."""
    if identity is None or identity.schemas is None:
        return
    allowed = ", ".join(identity.schemas)
    outside = sorted(query.qualifiers - set(identity.schemas) - CATALOG_SCHEMAS)
    if outside:
        raise QueryRejected(
            "schema_scope",
            f"the statement names the schema {outside[0]}, outside the schemas {identity.name!r} may read ({allowed})",
            f"query tables of {allowed} only; list_tables shows them",
        )
    statistics = sorted(query.relations & STATISTICS_VIEWS)
    if statistics:
        raise QueryRejected(
            "schema_scope",
            f"{statistics[0]} shows sample values of columns in every schema, outside the schemas {identity.name!r} "
            f"may read ({allowed})",
            "use explain for row estimates instead",
        )


__all__ = ["CATALOG_SCHEMAS", "STATISTICS_VIEWS", "check", "search_path", "visible"]
