"""Top-level field values of a collection kept in memory, to narrow a scan on a field without an index.

A filter such as ``{"n": {"$gte": 990}}`` on a field without an index would decode every document.
This cache keeps, per (table, field), the field's value of every row (``pos -> value``), as of a
sequence number: every write to a row stamps it with a higher number (sqlite_engine.py), so
``seq > cached`` finds exactly the rows to refresh, and a deleted row simply is not fetched again.
A field's second scan builds its cache (the first only marks it). A scan then tests the cached values, fetches only the candidate rows by ``pos``, and the caller
still checks every fetched document with the full filter (fast_filter.py), so the cache can only
narrow, never decide: a row whose value is of another kind (missing, an array, a bool, NaN) is
always a candidate.

It is used only outside a write transaction (a rolled-back write would leave wrong values behind),
on collections of at most :data:`MOST_ROWS` rows, for at most :data:`MOST_FIELDS` fields per engine.
"""

from __future__ import annotations

import bisect
import logging
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import bson

from custscore.store import fast_filter

log = logging.getLogger(__name__)

MOST_ROWS = 250_000  # larger collections are scanned as before (memory: one entry per row and field)
MOST_FIELDS = 8  # cached fields per engine, least recently used dropped first
PAGE = 4096  # rows decoded at a time while building
CANDIDATES_MOST = 0.25  # more candidates than this share of the rows: a plain scan is as cheap
_UNSURE = object()  # a value the fast tests do not decide (missing, arrays, documents, bools, NaN)


class FieldCache:
    """One top-level field of one table, as of sequence number ``seq``: row positions (sorted) and their values."""

    def __init__(self, seq: int):
        self.seq = seq
        self.positions = array("q")  # 8 bytes a row; the values are the decoded objects themselves
        self.values: list = []

    def put(self, pos: int, value: Any) -> None:
        """Set the value of the row at ``pos`` (a row written since: an update, or an insert)."""
        i = bisect.bisect_left(self.positions, pos)
        if i < len(self.positions) and self.positions[i] == pos:
            self.values[i] = value
        else:  # a new row: usually the last one, or one reusing the position of a deleted last row
            self.positions.insert(i, pos)
            self.values.insert(i, value)


def _cached_value(doc: dict, field: str) -> Any:
    value = doc.get(field, _UNSURE)
    return value if fast_filter.value_kind(value) is not None else _UNSURE


class FieldCaches:
    """The field caches of one engine (one SQLite connection)."""

    def __init__(self) -> None:
        self._caches: OrderedDict[tuple[str, str], FieldCache] = OrderedDict()
        self._scanned: set[tuple[str, str]] = set()  # fields scanned once: the second scan builds the cache

    def clear(self, table: str | None = None) -> None:
        """Forget every cache (of ``table`` only when given)."""
        for key in [k for k in self._caches if table is None or k[0] == table]:
            del self._caches[key]

    def candidates(self, conn: Any, table: str, field: str, kind: Any, test: Callable[[Any], bool]) -> list[int] | None:
        """Row positions that may match ``field``'s ``test`` (values of ``kind``), in order; None: scan instead.

        ``conn`` must be inside one read snapshot for the sequence and the refreshed rows. A field's
        first scan only marks it (a one-off scan, e.g. an export, keeps its bounded memory); the second builds.
        """
        seq = conn.execute("SELECT seq FROM _meta_sequence WHERE id = 1").fetchone()[0]
        cache = self._caches.get((table, field))
        if cache is None:
            if (table, field) not in self._scanned:
                self._scanned.add((table, field))
                return None
            (rows,) = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            if rows > MOST_ROWS:
                return None
            cache = self._build(conn, table, field, seq)
        elif cache.seq != seq:
            changed = conn.execute(f'SELECT pos, doc FROM "{table}" WHERE seq > ?', (cache.seq,)).fetchall()
            if len(cache.values) + len(changed) > MOST_ROWS:
                self.clear(table)
                return None
            for pos, blob in changed:
                cache.put(pos, _cached_value(bson.decode(blob), field))
            cache.seq = seq
        self._caches.move_to_end((table, field))
        kinds = (int, float) if kind is fast_filter.NUMBER else (kind,)
        # a value of the filter's kind that fails the test is the only one left out
        found = [pos for pos, v in zip(cache.positions, cache.values, strict=True)
                 if v.__class__ not in kinds or v != v or test(v)]
        if len(found) > CANDIDATES_MOST * max(len(cache.values), 1):
            return None
        return found

    def _build(self, conn: Any, table: str, field: str, seq: int) -> FieldCache:
        cache = FieldCache(seq)
        last = 0
        while True:  # in pages, so the build holds one page of decoded documents at a time
            top, rows, positions, blob = conn.execute(
                f"SELECT max(pos), count(*), group_concat(pos), CAST(group_concat(doc, '') AS BLOB) FROM "
                f'(SELECT pos, doc FROM "{table}" WHERE pos > ? ORDER BY pos LIMIT ?)', (last, PAGE)).fetchone()
            if not rows:
                break
            cache.positions.extend(int(p) for p in positions.split(","))
            cache.values.extend(_cached_value(doc, field) for doc in bson.decode_all(blob))
            last = top
        self._caches[(table, field)] = cache
        while len(self._caches) > MOST_FIELDS:
            self._caches.popitem(last=False)
        log.debug("cached %s.%s for %d rows", table, field, len(cache.values))
        return cache
