"""Resources: a database overview, and a template for one table's description; plus completion of the
template's `schema` and `table` arguments.

Resource reads go through the same audit line and metrics as tool calls (tool name `resource:<name>`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from pgmcp.audit import AuditRecord
from pgmcp.errors import CallError, InvalidArgument
from pgmcp.service import Service
from pgmcp.tools import observed, permitted, table_description

OVERVIEW_URI = "pg://overview"
TABLE_TEMPLATE = "pg://tables/{schema}/{table}"
OVERVIEW_RELATIONS = 500
COMPLETION_VALUES = 100


def register(mcp: MCPServer, service: Service) -> None:
    @mcp.resource(
        OVERVIEW_URI,
        name="overview",
        title="Database overview",
        description="The database at a glance: server version, exposed schemas, and their tables and views with "
        "estimated row counts and comments.",
        mime_type="text/markdown",
    )
    async def overview() -> str:
        async def body(record: AuditRecord) -> str:
            rows = await service.schema_reader.overview(OVERVIEW_RELATIONS + 1)
            record.rows = len(rows)
            return _overview_markdown(service, rows)

        return await _read(service, "resource:overview", body)

    @mcp.resource(
        TABLE_TEMPLATE,
        name="table",
        title="Table description",
        description="One table or view described as JSON (same fields as the describe_table tool): columns, keys, "
        "indexes, comments and size.",
        mime_type="application/json",
    )
    async def table(schema: str, table: str) -> str:
        async def body(record: AuditRecord) -> str:
            result = table_description(await service.schema_reader.describe(schema, table))
            record.rows = len(result.columns)
            return json.dumps(result.model_dump(by_alias=True, mode="json"), ensure_ascii=False)

        return await _read(service, "resource:table", body)

    @mcp.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves it unannotated
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if not isinstance(ref, ResourceTemplateReference) or ref.uri != TABLE_TEMPLATE:
            return None
        prefix = argument.value
        if argument.name == "schema":
            names = [str(row["name"]) for row in await service.schema_reader.schemas()]
        elif argument.name == "table":
            schema = (context.arguments or {}).get("schema") if context is not None else None
            if not schema:
                return Completion(values=[])
            try:
                names = [str(row["name"]) for row in await service.schema_reader.tables(schema, COMPLETION_VALUES * 10)]
            except InvalidArgument:
                return Completion(values=[])
        else:
            return None
        matches = [name for name in names if name.startswith(prefix)]
        return Completion(
            values=matches[:COMPLETION_VALUES], total=len(matches), has_more=len(matches) > COMPLETION_VALUES
        )


DISCOVERY = {"resource:overview": "list_tables", "resource:table": "describe_table"}
"""The tool whose permission a resource needs: it shows what that tool shows."""


async def _read(service: Service, name: str, body: Callable[[AuditRecord], Awaitable[str]]) -> str:
    """Run a resource body, observed like a tool call; failures become resource errors with the same text."""
    try:
        async with observed(service, name) as record:
            permitted(service, DISCOVERY[name])
            return await body(record)
    except InvalidArgument as exc:
        raise ResourceNotFoundError(exc.message) from None
    except CallError as exc:
        raise ResourceError(exc.message) from None


def _overview_markdown(service: Service, rows: list[dict[str, Any]]) -> str:
    server = service.database.server
    version = server.version if server is not None else "unknown"
    lines = [
        f"# Database `{service.settings.dbname}` (PostgreSQL {version})",
        "",
        "Read-only access. Tools: list_schemas, list_tables, describe_table, search_schema, query, explain. "
        f"Results are capped at {service.settings.max_rows} rows; statements time out after "
        f"{service.settings.statement_timeout_ms} ms.",
    ]
    current = None
    for row in rows[:OVERVIEW_RELATIONS]:
        if row["schema"] != current:
            current = row["schema"]
            comment = f": {row['schema_comment']}" if row["schema_comment"] else ""
            lines += ["", f"## Schema `{current}`{comment}", ""]
        if row["name"] is None:
            lines.append("(no readable tables)")
            continue
        estimate = f", ~{row['row_estimate']} rows" if row["row_estimate"] is not None else ""
        comment = f": {' '.join(row['comment'].split())}" if row["comment"] else ""
        lines.append(f"- `{row['name']}` ({row['kind']}{estimate}){comment}")
    if len(rows) > OVERVIEW_RELATIONS:
        lines += ["", f"(only the first {OVERVIEW_RELATIONS} relations are listed: use list_tables for the rest)"]
    return "\n".join(lines) + "\n"


__all__ = ["OVERVIEW_URI", "TABLE_TEMPLATE", "register"]
