"""The duration and size syntax shared with pgmcp (docs/conventions.md), in pgbackup's units: seconds, bytes.

Durations: a number and a unit, `250ms`, `90s`, `30m`, `1.5h`, `7d`; `0` needs no unit. A bare number is
ambiguous and refused, except where `bare_seconds_allowed` keeps the old meaning (seconds) for one release.
Sizes: plain bytes or IEC units, `1048576`, `512MiB`, `2GiB`. Errors are `ValueError`s: the reason, then
`hint:` lines.
"""

from __future__ import annotations

import re

SECONDS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))
BYTES = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))

_NUMBER_AND_UNIT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_BYTES_AND_UNIT = re.compile(r"^(\d+)(B|KiB|MiB|GiB|TiB)?$")
_SI_PREFIX = re.compile(r"^\d+\s*([kmgtKMGT])i?[bB]?$")


class BareNumber(ValueError):
    """A duration without a unit: `value` is what it would be in seconds, the old meaning in pgbackup."""

    def __init__(self, text: str, value: float) -> None:
        super().__init__(f"a duration needs a unit\nhint: write {text}s (seconds) or {text}ms")
        self.value = value


def seconds(text: str) -> float:
    """Seconds in `text`; raises BareNumber for a number without unit (other than 0), ValueError otherwise."""
    match = _NUMBER_AND_UNIT.match(text.strip())
    if match is None:
        raise ValueError("not a duration\nhint: write a number and one of ms, s, m, h, d (e.g. 90s, 30m, 2h)")
    number, unit = float(match.group(1)), match.group(2)
    if unit is None:
        if number == 0:
            return 0.0
        raise BareNumber(match.group(1), number)
    return number * dict(SECONDS)[unit]


def spell_seconds(value: float) -> str:
    """The shortest exact spelling of `value` seconds: 600 -> `10m`, 7200 -> `2h`, 0.25 -> `250ms`."""
    if value == 0:
        return "0"
    for unit, size in SECONDS:
        count = value / size
        if abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{value:g}s"


def byte_size(text: str) -> int:
    """Bytes in `text`: `4096`, `256KiB`, `100MiB`. SI spellings (`KB`, `100M`) are refused with the IEC one."""
    match = _BYTES_AND_UNIT.match(text.strip())
    if match is not None:
        return int(match.group(1)) * dict(BYTES).get(match.group(2) or "", 1)
    prefix = _SI_PREFIX.match(text.strip())
    if prefix is not None:
        raise ValueError(f"not a size in IEC units\nhint: write {prefix.group(1).upper()}iB (powers of 1024)")
    raise ValueError("not a size\nhint: write bytes, or a whole number with KiB, MiB, GiB or TiB (e.g. 512MiB)")


def spell_bytes(value: int) -> str:
    """The shortest exact spelling: 104857600 -> `100MiB`, 1000 -> `1000`."""
    for unit, size in BYTES:
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


__all__ = ["BareNumber", "byte_size", "seconds", "spell_bytes", "spell_seconds"]
