"""The tools' structured results: each model is a tool's `outputSchema`, and the SDK checks every result
against it before it leaves the server."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SchemaInfo(_Result):
    name: str
    owner: str
    comment: str | None = Field(description="COMMENT ON SCHEMA, written by the database's owners")
    tables: int = Field(description="tables and views in the schema this server may read")


class SchemasResult(_Result):
    schemas: list[SchemaInfo]


class TableInfo(_Result):
    name: str
    kind: str = Field(description="table, partitioned table, view, materialized view or foreign table")
    row_estimate: int | None = Field(description="planner estimate (pg_class.reltuples); null if never analyzed")
    size_bytes: int | None = Field(description="on-disk size including indexes and TOAST; null for views")
    comment: str | None


class TablesResult(_Result):
    schema_name: str = Field(alias="schema")
    tables: list[TableInfo]
    truncated: bool = Field(description="true when there are more tables than `limit`")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ColumnInfo(_Result):
    name: str
    type: str
    nullable: bool
    default: str | None
    comment: str | None


class ForeignKey(_Result):
    name: str
    columns: list[str]
    references_schema: str
    references_table: str
    references_columns: list[str]


class ReferencedBy(_Result):
    name: str
    schema_name: str = Field(alias="schema")
    table: str
    columns: list[str]
    referenced_columns: list[str]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NamedConstraint(_Result):
    name: str
    columns: list[str]
    definition: str


class IndexInfo(_Result):
    name: str
    definition: str
    unique: bool
    primary: bool


class TableDescription(_Result):
    schema_name: str = Field(alias="schema")
    name: str
    kind: str
    comment: str | None
    row_estimate: int | None
    size_bytes: int | None
    columns: list[ColumnInfo]
    primary_key: list[str] | None
    unique_constraints: list[NamedConstraint]
    foreign_keys: list[ForeignKey]
    check_constraints: list[NamedConstraint]
    indexes: list[IndexInfo]
    referenced_by: list[ReferencedBy] = Field(description="foreign keys of other tables that point at this one")
    view_definition: str | None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SchemaMatch(_Result):
    kind: str = Field(description="column, or the relation kind (table, view, ...)")
    schema_name: str = Field(alias="schema")
    table: str
    column: str | None
    type: str | None
    comment: str | None
    matched: Literal["name", "comment"]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SearchResult(_Result):
    pattern: str
    matches: list[SchemaMatch]
    truncated: bool = Field(description="true when there are more matches than `limit`")


class ResultColumn(_Result):
    name: str
    type: str = Field(description="PostgreSQL type, e.g. bigint, numeric(10,2), timestamp with time zone")


class QueryResult(_Result):
    columns: list[ResultColumn]
    rows: list[list[Any]] = Field(
        description="values in column order; numbers, booleans, null and JSON stay JSON; other types are "
        "PostgreSQL's text form (exact numeric, timestamps with offset)"
    )
    row_count: int
    truncated: bool = Field(description="true when rows were left out or some values were cut")
    truncated_reason: Literal["max_rows", "max_bytes", "max_cell_bytes"] | None = Field(
        description="max_rows / max_bytes: more rows exist than were returned; max_cell_bytes: only long values "
        "were cut"
    )
    truncated_cells: int = Field(description="values cut to the per-value byte limit (they end with …)")
    max_rows: int | None = Field(description="the row limit that applied")
    bytes: int = Field(description="UTF-8 size of the returned values")
    elapsed_ms: float


class ExplainResult(_Result):
    plan: Any = Field(description="EXPLAIN (FORMAT JSON) output")
    analyzed: bool = Field(description="true when the query was actually run (EXPLAIN ANALYZE)")
    total_cost: float | None
    estimated_rows: float | None
    planning_ms: float | None
    execution_ms: float | None


__all__ = [
    "ColumnInfo",
    "ExplainResult",
    "ForeignKey",
    "IndexInfo",
    "NamedConstraint",
    "QueryResult",
    "ReferencedBy",
    "ResultColumn",
    "SchemaInfo",
    "SchemaMatch",
    "SchemasResult",
    "SearchResult",
    "TableDescription",
    "TableInfo",
    "TablesResult",
]
