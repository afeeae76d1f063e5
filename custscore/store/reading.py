"""Reads on the embedded store: the SQL plan of a filter, rows in bounded pages, documents decoded lazily.

planner.py turns the indexable part of a filter into SQL that narrows the candidate rows;
fast_filter.py checks the candidates unless the SQL alone decides. Rows come in pages by
keyset (``pos > last``, growing from a few rows to :data:`PAGE_MOST`), each page a short
statement, so a scan of a million documents holds one page at a time. A statement held
open across the caller's loop would instead pin a read snapshot on a connection that other
threads write through, and keep the WAL from being checkpointed for as long as a slow
consumer (an export) reads. Engine errors are mapped by store/boundary.py.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from mongomock import filtering

from custscore.errors import InputError
from custscore.store import fast_filter, field_cache, limits, mql, planner, row_cache
from custscore.store.base import check_no_javascript
from custscore.store.boundary import mapped
from custscore.store.sqlite_engine import SQLiteEngine, table_name

PAGE_FIRST, PAGE_MOST = 16, 4096  # rows per page: few for a find_one, growing to this for a scan
_RAW = CodecOptions(document_class=RawBSONDocument)  # top level decoded on access, sub-documents left as bytes
BY_POS_MOST = 500  # candidate rows fetched per statement
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> field_cache.FieldCaches
_ROWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> row_cache.RowCache (find_in)


def top_fields(projection: dict | None, filter: dict | None) -> frozenset | None:
    """The top-level fields a find reads when its projection includes fields (plus the filter's and ``_id``),
    or None when it needs whole documents (no projection, an exclusion, a ``$`` operator at the top)."""
    if not isinstance(projection, dict):
        return None
    fields = [k for k in projection if k != "_id"]
    if not fields or not all(type(projection[k]) in (int, bool) and projection[k] for k in fields):
        return None
    wanted = {"_id", *(k.split(".")[0] for k in fields)}
    for key in filter or {}:
        if not isinstance(key, str) or key.startswith("$"):
            return None
        wanted.add(key.split(".")[0])
    return frozenset(wanted)


def _plain_raw(value):
    if isinstance(value, RawBSONDocument):
        return bson.decode(value.raw)
    if isinstance(value, list):
        return [_plain_raw(v) for v in value]
    return value


def partial_documents(blob: bytes, fields: frozenset) -> list[dict]:
    """The documents of a page with only ``fields`` decoded: a projection of a few fields skips the rest (the
    models' manifests carry their training background; the hot-reload probe reads task and version)."""
    out = []
    for raw in bson.decode_all(blob, _RAW):
        out.append({k: _plain_raw(raw[k]) for k in fields if k in raw})
    return out


@dataclass(frozen=True)
class ReadPlan:
    """How one filter is read: SQL ``WHERE`` text and parameters, whether SQL alone decides, the matcher."""

    table: str
    where: str
    params: list
    exact: bool
    match: fast_filter.Matcher
    keep: fast_filter.PageFilter  # the matches among a page of candidates
    what: str


def plan_read(engine: SQLiteEngine, collection: str, filter: dict | None) -> ReadPlan | None:
    """The plan for ``filter`` on ``collection``, or None when the collection has no table yet."""
    if filter is not None and not isinstance(filter, dict):
        raise InputError(f"a filter must be a document (dict), got {type(filter).__name__}")
    check_no_javascript(filter)
    spec = planner.normalize_filter(filter) if filter else None
    columns = engine.indexes_if_table(collection)
    if columns is None:
        return None
    where, params, exact = planner.plan(spec, columns)
    what = f"find in {collection}"
    with mapped(what, query=True):
        match, keep = fast_filter.compile_filter(spec), fast_filter.compile_page_filter(spec)
    return ReadPlan(table_name(collection), where, params, exact, match, keep, what)


def iter_documents(engine: SQLiteEngine, collection: str, filter: dict | None, limit: int = 0,
                   fields: frozenset | None = None) -> Iterator[dict]:
    """Matching documents in insertion order, read in bounded pages (``limit`` > 0: at most that many).

    With ``fields`` (:func:`top_fields`) only those top-level fields are decoded (the caller projects).
    """
    for page in iter_pages(engine, collection, filter, limit, fields):
        yield from page


def iter_pages(engine: SQLiteEngine, collection: str, filter: dict | None, limit: int = 0,
               fields: frozenset | None = None) -> Iterator[list[dict]]:
    """The documents of :func:`iter_documents`, a list per page (a columnar reader appends whole pages)."""
    plan = plan_read(engine, collection, filter)
    if plan is None:
        return
    positions = None if plan.exact else _cached_candidates(engine, collection, plan, filter)
    if positions is not None:
        yield from _by_position(engine, plan, positions, limit, fields)
        return
    if plan.exact:  # _id lookups: as many rows as ids at the most, in one page when it fits
        size = min(limit or PAGE_MOST, PAGE_MOST)
    else:
        size = min(max(limit, PAGE_FIRST), PAGE_MOST) if limit else PAGE_MOST // 16
    # one row per page: the last pos, the row count and the documents as one blob (BSON documents
    # concatenate into a valid stream for decode_all); no Python object per row until decoding
    sql = (f"SELECT max(pos), count(*), CAST(group_concat(doc, '') AS BLOB) FROM "
           f'(SELECT pos, doc FROM "{plan.table}" WHERE ({plan.where}) AND pos > ? ORDER BY pos LIMIT ?)')
    last, left = 0, limit
    while True:
        limits.check_deadline()  # a query's time budget (no-op outside one)
        wanted = min(size, left) if (plan.exact and limit) else size
        with mapped(plan.what, query=True):
            with engine.read() as conn:
                top, rows, blob = conn.execute(sql, [*plan.params, last, wanted]).fetchone()
            if not rows:
                return
            # one C call decodes a page
            docs = bson.decode_all(blob) if fields is None else partial_documents(blob, fields)
            if not plan.exact:
                docs = plan.keep(docs)
        last = top
        yield docs
        left -= len(docs)
        if rows < wanted or (limit and left <= 0):
            return
        size = min(size * 4, PAGE_MOST)


def _cached_candidates(engine: SQLiteEngine, collection: str, plan: ReadPlan, filter: dict | None) -> list[int] | None:
    """Positions of the rows that may match a one-field filter on a field without an index, from the
    field's cached values (field_cache.py); None when the filter or the moment does not suit it."""
    if not filter or len(filter) != 1:
        return None
    (key, cond), = filter.items()
    if (not isinstance(key, str) or key.startswith("$") or "." in key or key == "_id"
            or key in engine.indexes(collection)):
        return None
    fast = fast_filter.fast_condition(planner.normalize_filter(cond))
    if fast is None:
        return None
    with mapped(plan.what, query=True), engine.snapshot() as conn:
        if engine.in_write:  # a write of ours may still roll back: its values must not be cached
            return None
        caches = _CACHES.get(engine)
        if caches is None:
            caches = _CACHES[engine] = field_cache.FieldCaches()
        return caches.candidates(conn, plan.table, key, *fast)


def _by_position(engine: SQLiteEngine, plan: ReadPlan, positions: list[int], limit: int,
                 fields: frozenset | None) -> Iterator[list[dict]]:
    """The matching documents among the candidate rows at ``positions`` (in order), a list per fetched chunk."""
    left = limit
    for start in range(0, len(positions), BY_POS_MOST):
        limits.check_deadline()
        chunk = positions[start:start + BY_POS_MOST]
        with mapped(plan.what, query=True):
            with engine.read() as conn:
                (blob,) = conn.execute(
                    f"SELECT CAST(group_concat(doc, '') AS BLOB) FROM (SELECT doc FROM \"{plan.table}\" "
                    f"WHERE pos IN ({','.join('?' * len(chunk))}) ORDER BY pos)", chunk).fetchone()
            docs = bson.decode_all(blob or b"") if fields is None else partial_documents(blob or b"", fields)
            docs = plan.keep(docs)
        if limit:
            docs = docs[:left]
            left -= len(docs)
        yield docs
        if limit and left <= 0:
            return


def count_documents(engine: SQLiteEngine, collection: str, filter: dict | None) -> int:
    """Number of matching documents (SQL ``count(*)`` when SQL alone decides)."""
    plan = plan_read(engine, collection, filter)
    if plan is None:
        return 0
    if plan.exact:
        with mapped(plan.what), engine.read() as conn:
            return conn.execute(f'SELECT count(*) FROM "{plan.table}" WHERE {plan.where}', plan.params).fetchone()[0]
    return sum(1 for _ in iter_documents(engine, collection, filter))


def index_ordered(engine: SQLiteEngine, collection: str, filter: dict | None, path: str, descending: bool
                  ) -> Iterator[dict]:
    """Matches in MongoDB sort order on an indexed field, read lazily from the SQL index.

    Non-NULL index values sort in SQL exactly as MongoDB sorts them (see
    planner.index_key); NULL rows (missing, arrays, booleans) are sorted in
    Python and merged in.
    """
    plan = plan_read(engine, collection, filter)
    if plan is None:
        return iter(())
    column = engine.indexes(collection)[path]
    base = f'SELECT doc FROM "{plan.table}" WHERE ({plan.where}) AND {column}'
    key = lambda d: filtering.resolve_sort_key(path, d)  # noqa: E731

    def decoded(rows: list) -> list[dict]:
        with mapped(plan.what, query=True):
            docs = bson.decode_all(b"".join([blob for (blob,) in rows]))
            return docs if plan.exact else [doc for doc in docs if plan.match(doc)]

    with mapped(plan.what), engine.read() as conn:
        nulls = sorted(decoded(conn.execute(base + " IS NULL", plan.params).fetchall()), key=key, reverse=descending)

    def ordered() -> Iterator[dict]:
        offset, chunk = 0, 256
        order = "DESC" if descending else "ASC"
        while True:
            limits.check_deadline()
            with mapped(plan.what), engine.read() as conn:
                rows = conn.execute(
                    f"{base} IS NOT NULL ORDER BY {column} {order}, pos LIMIT ? OFFSET ?", [*plan.params, chunk, offset]
                ).fetchall()
            yield from decoded(rows)
            if len(rows) < chunk:
                return
            offset, chunk = offset + chunk, min(chunk * 4, 65536)

    return heapq.merge(nulls, ordered(), key=key, reverse=descending)


def columns_in(engine: SQLiteEngine, collection: str, field_name: str, values: Sequence, fields: Sequence[str],
               filter: dict | None = None) -> dict[str, list]:
    """``fields`` of the documents whose ``field_name`` is one of ``values`` (and match ``filter``), as columns:
    :func:`documents_in`, the values appended straight to per-field lists."""
    out: dict[str, list] = {f: [] for f in fields}
    _append_columns(out, documents_in(engine, collection, field_name, values, fields, filter))
    return out


def documents_in(engine: SQLiteEngine, collection: str, field_name: str, values: Sequence, fields: Sequence[str],
                 filter: dict | None = None) -> list[dict]:
    """The documents whose ``field_name`` is one of ``values`` (and match ``filter``), each holding at least the
    top-level fields of ``fields`` it has; shared with the row cache, so to be read, never changed.

    One statement (an SQL ``IN`` on the field's index when it has one) for the candidates' positions and
    sequence numbers and one decode call for the rows the engine's row cache (row_cache.py) does not hold as they
    are now: no projected document per row. Inside a write transaction every candidate is decoded whole.
    """
    if not values:
        return []
    spec = {field_name: {"$in": list(values)}, **(filter or {})}
    plan = plan_read(engine, collection, spec)
    if plan is None:
        return []
    with mapped(plan.what, query=True):
        docs = _cached_rows(engine, collection, plan, spec, fields)
        if docs is None:
            with engine.read() as conn:
                (blob,) = conn.execute(f"SELECT CAST(group_concat(doc, '') AS BLOB) FROM "
                                       f'(SELECT doc FROM "{plan.table}" WHERE {plan.where} ORDER BY pos)', plan.params
                                       ).fetchone()
            docs = bson.decode_all(blob or b"")
        if not plan.exact:
            docs = plan.keep(docs)
    return docs


def _cached_rows(engine: SQLiteEngine, collection: str, plan: ReadPlan, spec: dict, fields: Sequence[str]
                 ) -> list[dict] | None:
    """The candidate rows of ``plan`` with the top-level fields that ``fields`` and the filter need, through the
    engine's row cache (row_cache.py); None inside a write transaction, for a filter with a top-level operator, or
    when the field has no index (the candidates would be every row: caching them all buys nothing)."""
    if any(type(k) is not str or k.startswith("$") for k in spec):
        return None
    if next(iter(spec)) not in engine.indexes(collection):
        return None
    needed = tuple(sorted({*(f.split(".")[0] for f in fields), *(k.split(".")[0] for k in spec)}))
    with engine.snapshot() as conn:
        if engine.in_write:  # a write of ours may still roll back: its rows must not be cached
            return None
        return rows_cached(engine).rows(conn, plan.table, plan.where, plan.params, needed)


def rows_cached(engine: SQLiteEngine) -> row_cache.RowCache:
    """The engine's row cache of ``find_in`` reads (made on first use)."""
    cache = _ROWS.get(engine)
    if cache is None:
        cache = _ROWS[engine] = row_cache.RowCache()
    return cache


def columns_where(engine: SQLiteEngine, collection: str, filter: dict | None, fields: Sequence[str]
                  ) -> dict[str, list]:
    """``fields`` of every document matching ``filter``, as columns, read in :func:`iter_documents`' pages.

    Each page is decoded whole in one C call: for small documents such as events that is several times faster
    than decoding only the projected fields (:func:`partial_documents`) and projecting each document.
    """
    out: dict[str, list] = {f: [] for f in fields}
    for page in iter_pages(engine, collection, filter):
        _append_columns(out, page)
    return out


def _append_columns(out: dict[str, list], docs: list[dict]) -> None:
    for name, column in out.items():
        if "." in name:
            column.extend([mql.get_path(doc, name) for doc in docs])
        else:
            column.extend([doc.get(name) for doc in docs])
