"""Memoised guard verdicts. The guard (`pgmcp.guard.validate`) is a pure function of the SQL text, the function
catalogue and the layers, all fixed for a server's lifetime, so the verdict on a text it has already judged, accept
or refuse, is reused instead of parsing it again: agents repeat statements, and parsing is a tenth of a simple
call's cost. Bounded in entries and in text length; least recently used entries go first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pglast import parser as pg_parser

from pgmcp import guard
from pgmcp.catalog import FunctionCatalog
from pgmcp.layers import Layers

MAX_ENTRIES = 2048
MAX_CACHED_CHARS = 8192


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer on one text, plus the highest `$n` placeholder it holds (0 when none or unparsable)."""

    accepted: guard.ValidatedQuery | None
    rejected: tuple[str, str] | None  # (rule, message): a fresh exception is raised from it each time
    placeholders: int


class Verdicts:
    """The verdicts of one server (one catalogue, one set of layers)."""

    def __init__(self, catalog: FunctionCatalog, layers: Layers) -> None:
        self._catalog = catalog
        self._layers = layers
        self._cache: OrderedDict[str, Verdict] = OrderedDict()

    def judge(self, sql: str) -> Verdict:
        cached = self._cache.get(sql)
        if cached is not None:
            self._cache.move_to_end(sql)
            return cached
        try:
            verdict = Verdict(guard.validate(sql, self._catalog, self._layers), None, placeholders(sql))
        except guard.QueryRejected as exc:
            verdict = Verdict(None, (exc.rule, exc.message), 0)
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
