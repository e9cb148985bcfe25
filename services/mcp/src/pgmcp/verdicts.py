"""Memoised guard verdicts. The guard (`pgmcp.guard.validate`) is a pure function of the SQL text, the function
policy, the layers and the operator's EXPLAIN ANALYZE setting, all fixed for a server's lifetime, so the verdict
on a text it has already judged, accept or refuse, is reused instead of parsing it again: agents repeat
statements, and parsing is a tenth of a simple call's cost. Bounded in entries and in text length; least recently
used entries go first.

`Verdicts` is also where the guard's state lives: the function policy the database pool read at startup is handed
to it by the composition root (`pgmcp.service.Service.open`), and the guard vets its SQL function bodies then.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pglast import parser as pg_parser

from pgmcp import guard
from pgmcp.errors import DatabaseUnavailable, QueryRejected
from pgmcp.layers import Layers
from pgmcp.policy import FunctionPolicy

MAX_ENTRIES = 2048
MAX_CACHED_CHARS = 8192


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer on one text, plus the highest `$n` placeholder it holds (0 when none or unparsable)."""

    outcome: guard.ValidatedQuery | QueryRejected  # a rejection is kept, never raised: `query()` raises a copy
    placeholders: int

    def query(self) -> guard.ValidatedQuery:
        """The accepted query, or a fresh `QueryRejected`."""
        if isinstance(self.outcome, QueryRejected):
            raise self.outcome.again()
        return self.outcome


class Verdicts:
    """The verdicts of one server (one function policy, one set of layers, one EXPLAIN ANALYZE setting)."""

    def __init__(self, layers: Layers, *, explain_analyze: bool, policy: FunctionPolicy | None = None) -> None:
        self._layers = layers
        self._explain_analyze = explain_analyze
        self._policy = policy
        self._cache: OrderedDict[str, Verdict] = OrderedDict()

    def load(self, policy: FunctionPolicy) -> None:
        """Judge with `policy` (read from the database at startup) from now on, once its user-written SQL
        functions are vetted (`pgmcp.guard.vet_function_bodies`)."""
        self._policy = guard.vet_function_bodies(policy)
        self._cache.clear()

    def judge(self, sql: str) -> Verdict:
        """The verdict on `sql`; `DatabaseUnavailable` until a policy is loaded (the server is still starting)."""
        policy = self._policy
        if policy is None:
            raise DatabaseUnavailable("the server has not finished starting (no function policy yet): retry shortly")
        cached = self._cache.get(sql)
        if cached is not None:
            self._cache.move_to_end(sql)
            return cached
        try:
            accepted = guard.validate(sql, policy, self._layers, explain_analyze=self._explain_analyze)
            verdict = Verdict(accepted, placeholders(sql))
        except QueryRejected as exc:
            verdict = Verdict(exc.again(), 0)
        if len(sql) <= MAX_CACHED_CHARS:
            self._cache[sql] = verdict
            if len(self._cache) > MAX_ENTRIES:
                self._cache.popitem(last=False)
        return verdict


def placeholders(sql: str) -> int:
    """The highest `$n` in `sql`, found with PostgreSQL's own scanner (`'$1'` in a string or a comment does not
    count); 0 when there is none or the text does not scan (the guard or the database reports that)."""
    try:
        tokens = pg_parser.scan(sql)
    except pg_parser.ParseError:
        return 0
    return max((int(sql[token.start + 1 : token.end + 1]) for token in tokens if token.name == "PARAM"), default=0)


__all__ = ["Verdict", "Verdicts", "placeholders"]
