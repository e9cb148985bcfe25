"""Values from the database made JSON-safe, measured and cut to the operator's limits (the CAP layer's arithmetic).

Numbers, booleans and NULL stay JSON scalars; `json`/`jsonb` become JSON values when they fit the cell limit;
everything else keeps PostgreSQL's own text form (exact `numeric`, `timestamptz` with its offset, `uuid`,
ranges, `bytea` as `\\x...`), because the connection loads those types as text (see `db.text_adapters`).
The size of a value is the UTF-8 size of its text; that is what `bytes` and `MCP_MAX_BYTES` count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pgmcp.types import Json

NULL_SIZE = 4  # counted as the text "null"
TRUNCATION_MARK = "…"


def cut_text(text: str, limit: int) -> tuple[str, int, bool]:
    """`text` cut to at most `limit` UTF-8 bytes (on a character boundary, marked with `…`).

    Returns (value, size in bytes of the returned value, whether it was cut).
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return text, len(encoded), False
    mark = TRUNCATION_MARK.encode()
    kept = encoded[: max(0, limit - len(mark))].decode("utf-8", "ignore")
    value = kept + TRUNCATION_MARK
    return value, len(value.encode("utf-8", "surrogatepass")), True


def convert_cell(value: Any, *, is_json: bool, cell_limit: int | None) -> tuple[Json, int, bool]:
    """One database value as (JSON-safe value, its size in bytes, whether it was cut)."""
    if value is None:
        return None, NULL_SIZE, False
    if isinstance(value, str):
        if cell_limit is None:
            converted: Json = value
            size = len(value.encode("utf-8", "surrogatepass"))
            cut = False
        else:
            converted, size, cut = cut_text(value, cell_limit)
        if is_json and not cut:
            try:
                return json.loads(value), size, False
            except ValueError:  # a json column always parses; keep the text if a domain over it does not
                return converted, size, cut
        return converted, size, cut
    if isinstance(value, bool):
        return value, 5 if not value else 4, False
    if isinstance(value, int):
        return value, len(str(value)), False
    if isinstance(value, float):
        if math.isfinite(value):
            return value, len(repr(value)), False
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return text, len(text), False
    if isinstance(value, list | tuple):
        return _convert_sequence(value, cell_limit)
    if isinstance(value, bytes | bytearray | memoryview):
        text = "\\x" + bytes(value).hex()
        return convert_cell(text, is_json=False, cell_limit=cell_limit)
    return convert_cell(str(value), is_json=False, cell_limit=cell_limit)


def _convert_sequence(values: Sequence[Any], cell_limit: int | None) -> tuple[Json, int, bool]:
    """An array value: its items converted; the whole array is cut to text when it exceeds the cell limit."""
    items: list[Json] = []
    size = 2
    cut = False
    for item in values:
        converted, item_size, item_cut = convert_cell(item, is_json=False, cell_limit=cell_limit)
        items.append(converted)
        size += item_size + 1
        cut = cut or item_cut
    if cell_limit is not None and size > cell_limit:
        text, text_size, _ = cut_text(json.dumps(items, ensure_ascii=False), cell_limit)
        return text, text_size, True
    return items, size, cut


def convert_row(
    row: Sequence[Any], json_columns: Sequence[bool], cell_limit: int | None
) -> tuple[list[Json], int, int]:
    """A row as (JSON-safe values, total size in bytes, number of cells cut).

    The common types (text, integers, NULL) take an inline path: this loop runs for every cell of every result.
    """
    values: list[Json] = []
    size = 0
    cut_cells = 0
    for value, is_json in zip(row, json_columns, strict=True):
        kind = type(value)
        if kind is str and not is_json:
            length = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
            if cell_limit is not None and length > cell_limit:
                value, length, _ = cut_text(value, cell_limit)
                cut_cells += 1
            values.append(value)
            size += length
        elif kind is int:
            values.append(value)
            size += len(str(value))
        elif value is None:
            values.append(None)
            size += NULL_SIZE
        else:
            converted, cell_size, cut = convert_cell(value, is_json=is_json, cell_limit=cell_limit)
            values.append(converted)
            size += cell_size
            cut_cells += cut
    return values, size, cut_cells


__all__ = ["convert_cell", "convert_row", "cut_text"]
