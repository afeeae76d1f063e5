"""A few decoded fields of recently read rows, so reading the same rows again decodes only what changed.

A long-lived reader (the scorer worker, the API) reads the same customers' events again and again: every new
purchase re-scores its customer, and every earlier event of that customer is read and decoded again (decoding was
two thirds of the worker's event read). This cache keeps, per (table, fields), the needed top-level fields of each
row it decoded, stamped with the row's sequence number. Every committed write to a row gives it a higher sequence
number (sqlite_engine.py), so a read asks SQL only for the ``(pos, seq)`` of the candidate rows and decodes only the
rows that are new to the cache or whose number moved; a deleted row simply is not returned again.

It is used only outside a write transaction: a rolled-back write hands its sequence numbers out again, so a value
read inside one could later stand for another. Its reads run in one snapshot, so the candidate list and the
fetched documents agree. At most :data:`MOST_ROWS` rows are kept per engine; the oldest entries go first. The
caller still applies the full filter to the cached fields (the filter's own fields are always among them).
"""

from __future__ import annotations

import sys
from typing import Any

import bson

MOST_ROWS = 200_000  # cached rows per engine (~300 bytes each for an event's seven fields: ~60 MB at the most)
BY_POS_MOST = 500  # positions per fetch of the rows to decode
_MISSING = object()


def _slim(doc: dict, fields: tuple[str, ...]) -> dict:
    """The top-level ``fields`` of ``doc`` that it has; text is interned (ids and categories repeat across rows)."""
    out = {}
    for name in fields:
        value = doc.get(name, _MISSING)
        if value is _MISSING:
            continue
        out[name] = sys.intern(value) if type(value) is str and len(value) <= 64 else value
    return out


class RowCache:
    """Rows of any table of one engine: ``(table, fields) -> {pos: (seq, fields of the row)}``."""

    def __init__(self, most_rows: int = MOST_ROWS):
        self.most_rows = most_rows
        self._tables: dict[tuple[str, tuple[str, ...]], dict[int, tuple[int, dict]]] = {}
        self.size = 0
        self.decoded = 0  # rows decoded since the cache was made (for tests and benchmarks)

    def rows(self, conn: Any, table: str, where: str, params: list, fields: tuple[str, ...]) -> list[dict]:
        """The candidate rows of ``WHERE where`` in ``pos`` order, each as a dict of its ``fields``.

        ``conn`` must be inside one read snapshot and outside any write transaction. The dicts are the cache's
        own: callers read them and must not change them.
        """
        entries = self._tables.setdefault((table, fields), {})
        found = conn.execute(f'SELECT pos, seq FROM "{table}" WHERE {where} ORDER BY pos', params).fetchall()
        stale = [pos for pos, seq in found if (entry := entries.get(pos)) is None or entry[0] != seq]
        if stale:
            self._decode(conn, table, stale, entries, fields)
        rows = [entries[pos][1] for pos, _ in found]
        if self.size > self.most_rows:
            self._shrink()
        return rows

    def _decode(self, conn: Any, table: str, positions: list[int], entries: dict, fields: tuple[str, ...]) -> None:
        for start in range(0, len(positions), BY_POS_MOST):
            chunk = positions[start:start + BY_POS_MOST]
            got = conn.execute(f'SELECT pos, seq, doc FROM "{table}" WHERE pos IN ({",".join("?" * len(chunk))}) '
                               "ORDER BY pos", chunk).fetchall()
            docs = bson.decode_all(b"".join(row[2] for row in got))
            for (pos, seq, _), doc in zip(got, docs, strict=True):
                if pos not in entries:
                    self.size += 1
                entries[pos] = (seq, _slim(doc, fields))
            self.decoded += len(got)

    def _shrink(self) -> None:
        """Drop the oldest half of every table's entries (insertion order)."""
        for entries in self._tables.values():
            for pos in list(entries)[: len(entries) // 2 + 1]:
                del entries[pos]
        self.size = sum(len(e) for e in self._tables.values())

    def clear(self) -> None:
        self._tables.clear()
        self.size = 0
