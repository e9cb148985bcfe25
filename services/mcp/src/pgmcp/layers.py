"""The server's independent safety layers (docs/security.md), and the switch tests use to isolate one.

Production code always runs with every layer on: no setting, environment variable or request can turn
one off. Tests build a `Layers` with some fields False to prove that each remaining layer stops its class
of attack on its own (tests/security/).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Layers:
    """Which safety layers are active. The default, every layer on, is the only production value."""

    role: bool = True  # ROLE: least-privilege database role, audited at startup
    ro: bool = True  # RO: every call inside BEGIN READ ONLY, always rolled back
    one: bool = True  # ONE: exactly one statement, sent over the extended protocol
    ast: bool = True  # AST: pglast allow-list of statements, nodes and functions
    tmo: bool = True  # TMO: server-side statement/lock/idle timeouts plus a cancel watchdog
    cap: bool = True  # CAP: rows and bytes capped while streaming, cells truncated
    hyg: bool = True  # HYG: pooled connections reset before reuse

    @classmethod
    def only(cls, *names: str) -> Layers:
        """Every layer off except `names`, e.g. `Layers.only("ro")`; for tests."""
        known = {field.name for field in fields(cls)}
        unknown = set(names) - known
        if unknown:
            raise ValueError(f"unknown layer(s) {sorted(unknown)}: expected some of {sorted(known)}")
        return cls(**{name: name in names for name in known})

    def active(self) -> list[str]:
        return [field.name for field in fields(self) if getattr(self, field.name)]


ALL_LAYERS = Layers()
