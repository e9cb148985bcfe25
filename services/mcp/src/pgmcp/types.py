"""Type aliases shared by the modules of the package."""

from __future__ import annotations

from typing import TypeAlias

JsonScalar: TypeAlias = str | int | float | bool | None
Json: TypeAlias = JsonScalar | list["Json"] | dict[str, "Json"]
ParamValue: TypeAlias = str | int | float | bool | None
"""A bound query parameter as a client sends it: a JSON scalar, adapted by PostgreSQL to the placeholder's type."""

__all__ = ["Json", "JsonScalar", "ParamValue"]
