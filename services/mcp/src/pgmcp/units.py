"""Durations and sizes as an operator writes them (docs/conventions.md): `250ms`, `5s`, `2m`, `1h`, `1d`;
`512`, `256KiB`, `1MiB`. The server keeps durations as whole milliseconds and sizes as bytes.

A problem is a `ValueError` whose text is the reason, then `hint:` lines saying what to write instead.
"""

from __future__ import annotations

import re
from decimal import Decimal

MS_PER_UNIT = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
BYTES_PER_UNIT = {"TiB": 1024**4, "GiB": 1024**3, "MiB": 1024**2, "KiB": 1024, "B": 1}

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h|d)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SIZE = re.compile(r"(?P<number>\d+)(?P<unit>B|KiB|MiB|GiB|TiB)?")
_DECIMAL_SIZE = re.compile(r"\d+\s*(?P<prefix>[kKmMgGtT])i?[bB]?")


def to_milliseconds(text: str) -> int:
    """`250ms` -> 250, `5s` -> 5000, `1.5m` -> 90000; `0` alone needs no unit. A bare number is refused:
    `5000` could mean seconds as well as milliseconds."""
    stripped = text.strip()
    found = _DURATION.fullmatch(stripped)
    if found is None:
        if _BARE_NUMBER.fullmatch(stripped):
            if Decimal(stripped) == 0:
                return 0
            raise ValueError(f"a duration needs a unit\nhint: write {stripped}ms or {stripped}s")
        raise ValueError("not a duration\nhint: write a number and one of ms, s, m, h, d (e.g. 250ms, 5s, 2m, 1h)")
    exact = Decimal(found.group("number")) * MS_PER_UNIT[found.group("unit")]
    if exact != exact.to_integral_value():
        raise ValueError("finer than a millisecond\nhint: round it to whole milliseconds (e.g. 1ms)")
    return int(exact)


def show_milliseconds(value: int) -> str:
    """The shortest exact spelling: 5000 -> `5s`, 90000 -> `90s`, 250 -> `250ms`."""
    unit = next((name for name, size in MS_PER_UNIT.items() if value and value % size == 0), "ms")
    return "0" if value == 0 else f"{value // MS_PER_UNIT[unit]}{unit}"


def to_bytes(text: str) -> int:
    """`4096` -> 4096, `256KiB` -> 262144. Decimal units (`KB`, `MB`) are refused: they are ambiguous."""
    stripped = text.strip()
    found = _SIZE.fullmatch(stripped)
    if found is not None:
        return int(found.group("number")) * BYTES_PER_UNIT[found.group("unit") or "B"]
    decimal = _DECIMAL_SIZE.fullmatch(stripped)
    if decimal is not None:
        prefix = decimal.group("prefix").upper()
        raise ValueError(f"not a size in IEC units\nhint: write {prefix}iB (powers of 1024), or plain bytes")
    raise ValueError("not a size\nhint: write bytes, or a whole number with KiB, MiB, GiB or TiB (e.g. 256KiB)")


def show_bytes(value: int) -> str:
    """The shortest exact spelling: 262144 -> `256KiB`, 1000 -> `1000`."""
    unit = next((name for name, size in BYTES_PER_UNIT.items() if size > 1 and value and value % size == 0), "")
    return f"{value // BYTES_PER_UNIT[unit]}{unit}" if unit else str(value)


__all__ = ["show_bytes", "show_milliseconds", "to_bytes", "to_milliseconds"]
