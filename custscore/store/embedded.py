"""The embedded backend: MongoDB semantics on SQLite, for one machine.

Documents live as BSON in SQLite (see sqlite_engine.py). ``_id`` lookups and
declared indexed fields are answered through SQL (planner.py); every other
condition is checked by mongomock's filter engine on the candidates, and
aggregation pipelines run on mongomock's aggregation engine. Why ours and not
mongomock or montydb: ARCHITECTURE.md, "Store backends".
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import logging
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bson
from mongomock import aggregate as mm_aggregate
from mongomock import filtering

from custscore.errors import ChangeFeedLost, DuplicateKeyError, InputError, StoreError
from custscore.store import grouping, limits, mql, planner
from custscore.store.base import (
    Change,
    ChangeBatch,
    Collection,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    SortSpec,
    Store,
    UpdateOne,
    WriteOp,
    WriteResult,
    check_no_javascript,
)
from custscore.store.sqlite_engine import SQLiteEngine, index_column, table_name

log = logging.getLogger(__name__)
TOKEN_PREFIX = "seq:"


def _encode(doc: dict) -> bytes:
    # MongoDB's limits (100 levels, 16 MB) on every write: see store/limits.py
    return limits.encode_document(doc, f"document {doc.get('_id')!r}")


# value OP arg written as a C-level partial on arg: ``partial(operator.le, arg)(v)`` is ``arg <= v``, i.e. ``v >= arg``
_FAST_OPS = {"$eq": operator.eq, "$gt": operator.lt, "$gte": operator.le, "$lt": operator.gt, "$lte": operator.ge}


_NUMBER = (int, float)


def _kind(value: Any) -> Any:
    """The fast-path class of a value: str, datetime, number (int/float, not bool, not NaN), else None."""
    t = type(value)
    if t is str or t is dt.datetime:
        return t
    if (t is int or t is float) and value == value:
        return _NUMBER
    return None


def _fast_condition(cond: Any) -> tuple[Any, Callable[[Any], bool]] | None:
    """A Python test for a condition whose operands are all str, all datetime or all numbers, or None.

    Only the unambiguous cases: when the stored value is of the operands' class too (a number that is
    not NaN for numbers), Mongo's comparison is Python's. Other operators, operand types, arrays and
    missing fields go to mongomock.
    """
    kind = _kind(cond)
    if kind is not None:
        return kind, lambda v: v == cond
    if not isinstance(cond, dict) or not cond:
        return None
    tests: list[Callable[[Any], bool]] = []
    kinds = set()
    for op, arg in cond.items():
        if op == "$in" and isinstance(arg, list | tuple) and arg:
            kinds.update(_kind(a) for a in arg)
            if None in kinds:
                return None
            members = frozenset(arg)
            tests.append(lambda v, m=members: v in m)
        elif op in _FAST_OPS and _kind(arg) is not None:
            kinds.add(_kind(arg))
            tests.append(functools.partial(_FAST_OPS[op], arg))
        else:
            return None
    if len(kinds) != 1 or None in kinds:
        return None
    if len(tests) == 1:
        return next(iter(kinds)), tests[0]
    return next(iter(kinds)), lambda v: all(t(v) for t in tests)


def _matcher(spec: dict | None) -> Callable[[dict], bool]:
    """``doc -> bool`` for a filter, compiled once per query (the scorer's ``customer_id $in`` / ``ts $lte``
    filters run per event document, and numeric filters on every row of a scan, where mongomock's engine
    cost more than reading the rows)."""
    if not spec:
        return lambda doc: True
    fast = []
    for key, cond in spec.items():
        compiled = None if key.startswith("$") or "." in key else _fast_condition(cond)
        if compiled is None:
            return lambda doc: filtering.filter_applies(spec, doc)
        fast.append((key, *compiled))

    if len(fast) == 1 and fast[0][1] is _NUMBER:  # the common numeric filter, one call per row
        key, _, test = fast[0]

        def match_number(doc: dict) -> bool:
            value = doc.get(key)
            kind = type(value)
            if (kind is int or kind is float) and value == value:
                return test(value)
            return filtering.filter_applies(spec, doc)

        return match_number

    def match(doc: dict) -> bool:
        for key, kind, test in fast:
            value = doc.get(key)
            if _kind(value) is not kind:
                return filtering.filter_applies(spec, doc)
            if not test(value):
                return False
        return True

    return match


def _by_id_updates(ops: Sequence[WriteOp]) -> list | None:
    """The ``_id`` of each op when every op is an ``UpdateOne`` of one plain ``_id`` (all distinct), else None."""
    ids: list = []
    for op in ops:
        if type(op) is not UpdateOne or not isinstance(op.filter, dict) or len(op.filter) != 1:
            return None
        value = op.filter.get("_id", _MISSING)
        if isinstance(value, dict) and set(value) == {"$eq"}:
            value = value["$eq"]
        if value is _MISSING or isinstance(value, dict | list | dt.datetime):
            return None
        ids.append(value)
    keys = {planner.encode_id(i) for i in ids}
    return ids if len(keys) == len(ids) else None


_MISSING = object()


def _matches(spec: dict | None, doc: dict) -> bool:
    return _matcher(spec)(doc)


class EmbeddedCollection(Collection):
    """A collection in the embedded store."""

    def __init__(self, store: EmbeddedStore, name: str):
        self.name = name
        self._store = store
        self._engine = store.engine
        self._table = table_name(name)

    # -- reading ------------------------------------------------------------------
    def _rows(self, filter: dict | None, columns: str = "doc", limit: int = 0) -> tuple[list, bool, dict | None]:
        """Candidate rows for ``filter`` and whether they need the mongomock check."""
        if filter is not None and not isinstance(filter, dict):
            raise InputError(f"a filter must be a document (dict), got {type(filter).__name__}")
        check_no_javascript(filter)
        spec = planner.normalize_filter(filter) if filter else None
        if not self._engine.table_exists(self.name):
            return [], True, spec
        where, params, exact = planner.plan(spec, self._engine.indexes(self.name))
        sql = f'SELECT {columns} FROM "{self._table}" WHERE {where} ORDER BY pos'
        if exact and limit:
            sql += f" LIMIT {int(limit)}"
        with self._engine.read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return rows, exact, spec

    def _iter_docs(self, filter: dict | None, limit: int = 0) -> Iterator[dict]:
        rows, exact, spec = self._rows(filter, limit=limit)
        match = _matcher(spec)
        start, size = 0, 16
        while start < len(rows):
            limits.check_deadline()  # a query's time budget (no-op outside one)
            # one C call decodes a chunk (growing: a find_one decodes few); per-row decode calls cost as much
            docs = bson.decode_all(b"".join([blob for (blob,) in rows[start:start + size]]))
            yield from (docs if exact else [doc for doc in docs if match(doc)])
            start, size = start + size, min(size * 4, 4096)

    def find(
        self,
        filter: dict | None = None,
        projection: dict | None = None,
        sort: SortSpec = None,
        limit: int = 0,
        skip: int = 0,
    ) -> Iterator[dict]:
        if limit < 0 or skip < 0:
            raise InputError(f"limit and skip must be >= 0, got limit={limit}, skip={skip}")
        if sort and limit and len(sort) == 1 and sort[0][0] in self._engine.indexes(self.name):
            docs: Any = self._index_ordered(filter, sort[0][0], sort[0][1] < 0)
        elif sort:
            docs = mql.sort_documents(self._iter_docs(filter), sort)
        else:
            docs = self._iter_docs(filter, limit=(limit + skip) if limit else 0)
        for n, doc in enumerate(docs):
            if n < skip:
                continue
            if limit and n >= skip + limit:
                break
            yield mql.project(doc, projection)

    def _index_ordered(self, filter: dict | None, path: str, descending: bool) -> Iterator[dict]:
        """Matches in MongoDB sort order on an indexed field, read lazily from the SQL index.

        Non-NULL index values sort in SQL exactly as MongoDB sorts them (see
        planner.index_key); NULL rows (missing, arrays, booleans) are sorted in
        Python and merged in.
        """
        spec = planner.normalize_filter(filter) if filter else None
        check_no_javascript(spec)
        if not self._engine.table_exists(self.name):
            return iter(())
        where, params, exact = planner.plan(spec, self._engine.indexes(self.name))
        column = self._engine.indexes(self.name)[path]
        base = f'SELECT doc FROM "{self._table}" WHERE ({where}) AND {column}'
        key = lambda d: filtering.resolve_sort_key(path, d)  # noqa: E731

        match = _matcher(spec)

        def decoded(rows: list) -> Iterator[dict]:
            for (blob,) in rows:
                doc = bson.decode(blob)
                if exact or match(doc):
                    yield doc

        with self._engine.read() as conn:
            nulls = sorted(decoded(conn.execute(base + " IS NULL", params).fetchall()), key=key, reverse=descending)

        def ordered() -> Iterator[dict]:
            offset, chunk = 0, 256
            order = "DESC" if descending else "ASC"
            while True:
                with self._engine.read() as conn:
                    rows = conn.execute(
                        f"{base} IS NOT NULL ORDER BY {column} {order}, pos LIMIT ? OFFSET ?", [*params, chunk, offset]
                    ).fetchall()
                yield from decoded(rows)
                if len(rows) < chunk:
                    return
                offset, chunk = offset + chunk, min(chunk * 4, 65536)

        return heapq.merge(nulls, ordered(), key=key, reverse=descending)

    def count(self, filter: dict | None = None) -> int:
        if not filter:
            if not self._engine.table_exists(self.name):
                return 0
            with self._engine.read() as conn:
                return conn.execute(f'SELECT count(*) FROM "{self._table}"').fetchone()[0]
        rows, exact, spec = self._rows(filter)
        if exact:
            return len(rows)
        match = _matcher(spec)
        return sum(1 for (blob,) in rows if match(bson.decode(blob)))

    def distinct(self, field_name: str, filter: dict | None = None) -> list:
        seen: list = []
        keys: set = set()
        for doc in self._iter_docs(filter):
            value = mql.get_path(doc, field_name)
            for item in value if isinstance(value, list) else [value]:
                if item is None:
                    continue
                key = (type(item).__name__, repr(item))
                if key not in keys:
                    keys.add(key)
                    seen.append(item)
        return seen

    def aggregate(self, pipeline: list[dict]) -> list[dict]:
        if not isinstance(pipeline, list) or not all(isinstance(s, dict) and len(s) == 1 for s in pipeline):
            raise InputError("a pipeline must be a list of one-key stage documents such as [{'$match': {...}}]")
        check_no_javascript(pipeline)
        for stage in pipeline:
            if {"$out", "$merge"} & set(stage):
                raise InputError("$out and $merge are not supported; write results with the store's insert methods")
        stages = list(pipeline)
        first: dict | None = None
        if stages and "$match" in stages[0]:
            first = stages.pop(0)["$match"]
        docs = list(self._iter_docs(first))
        try:
            for stage in stages:
                if "$group" in stage:
                    docs = grouping.group(docs, stage["$group"])
                else:
                    docs = list(mm_aggregate.process_pipeline(docs, _DatabaseView(self._store), [stage], None))
            return docs
        except NotImplementedError as exc:
            raise InputError(f"the embedded store cannot run this pipeline: {exc}") from exc
        except Exception as exc:  # mongomock raises its own OperationFailure family
            raise InputError(f"pipeline failed: {exc}") from exc

    # -- writing ------------------------------------------------------------------
    def _index_values(self, doc: dict, columns: dict[str, str]) -> list:
        return [planner.index_key(mql.get_path(doc, f)) for f in columns]

    def _row(self, doc: dict, seq: int, columns: dict[str, str]) -> tuple[Any, list]:
        if not isinstance(doc, dict):
            raise InputError(f"a document must be a dict, got {type(doc).__name__}")
        if "_id" not in doc:
            doc = {"_id": bson.ObjectId(), **doc}
        return doc["_id"], [planner.encode_id(doc["_id"]), seq, 1, _encode(doc), *self._index_values(doc, columns)]

    def _insert_rows(self, conn: sqlite3.Connection, rows: list[tuple[Any, list]], columns: dict[str, str]) -> None:
        cols = ", ".join(["id", "seq", "version", "doc", *columns.values()])
        marks = ", ".join("?" * (4 + len(columns)))
        try:
            conn.executemany(f'INSERT INTO "{self._table}" ({cols}) VALUES ({marks})', [r for _, r in rows])
        except sqlite3.IntegrityError as exc:
            seen: set = set()
            culprit = None
            for doc_id, row in rows:
                if row[0] in seen or conn.execute(f'SELECT 1 FROM "{self._table}" WHERE id = ?', (row[0],)).fetchone():
                    culprit = doc_id
                    break
                seen.add(row[0])
            raise DuplicateKeyError(
                f"{self.name}: a document with _id {culprit!r} already exists (or breaks a unique index)"
            ) from exc

    def _insert(self, conn: sqlite3.Connection, doc: dict, seq: int, columns: dict[str, str]) -> Any:
        row = self._row(doc, seq, columns)
        self._insert_rows(conn, [row], columns)
        return row[0]

    def _write_back(self, conn: sqlite3.Connection, doc: dict, columns: dict[str, str]) -> None:
        sets = ", ".join(["seq = ?", "version = version + 1", "doc = ?", *(f"{c} = ?" for c in columns.values())])
        conn.execute(
            f'UPDATE "{self._table}" SET {sets} WHERE id = ?',
            [self._engine.next_seq(1), _encode(doc), *self._index_values(doc, columns), planner.encode_id(doc["_id"])],
        )

    def insert_many(self, documents: Sequence[dict]) -> list:
        docs = list(documents)
        if not docs:
            return []
        self._engine.ensure_table(self.name)
        with self._engine.write() as conn:
            columns = self._engine.indexes(self.name)
            first = self._engine.next_seq(len(docs))
            rows = [self._row(doc, first + i, columns) for i, doc in enumerate(docs)]
            self._insert_rows(conn, rows, columns)
            return [doc_id for doc_id, _ in rows]

    def bulk_write(self, ops: Sequence[WriteOp]) -> WriteResult:
        result = WriteResult()
        if not ops:
            return result
        self._engine.ensure_table(self.name)
        with self._engine.write() as conn:
            columns = self._engine.indexes(self.name)
            by_id = _by_id_updates(ops)
            if by_id is not None:
                return self._bulk_by_id(conn, ops, by_id, columns)
            for op in ops:
                result.add(self._apply(conn, op, columns))
        return result

    def _bulk_by_id(self, conn: sqlite3.Connection, ops: Sequence[WriteOp], ids: list, columns: dict[str, str]
                    ) -> WriteResult:
        """Updates/upserts of distinct ``_id`` values: one SELECT, apply in memory, one ``executemany``
        per kind of write and one sequence bump (same effect as applying them one by one)."""
        keys = [planner.encode_id(i) for i in ids]
        stored: dict[bytes, bytes] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            stored.update(conn.execute(f'SELECT id, doc FROM "{self._table}" WHERE id IN ({",".join("?" * len(chunk))})',
                                       chunk).fetchall())
        result = WriteResult()
        changed: list[tuple[bytes, dict | None, dict]] = []  # (key, current or None for an insert, new)
        for op, key in zip(ops, keys, strict=True):
            blob = stored.get(key)
            if blob is None:
                if op.upsert:
                    changed.append((key, None, mql.apply_update(mql.upsert_seed(op.filter), op.update, is_insert=True)))
                continue
            current = bson.decode(blob)
            new = mql.apply_update(current, op.update)
            result.matched += 1
            if new != current:
                changed.append((key, current, new))
        if not changed:
            return result
        first = self._engine.next_seq(len(changed))
        updates, inserts = [], []
        for n, (key, current, new) in enumerate(changed):
            if current is None:
                inserts.append(self._row(new, first + n, columns))
                result.upserted_ids.append(inserts[-1][0])
            else:
                updates.append([first + n, _encode(new), *self._index_values(new, columns), key])
                result.modified += 1
        if updates:
            sets = ", ".join(["seq = ?", "version = version + 1", "doc = ?", *(f"{c} = ?" for c in columns.values())])
            conn.executemany(f'UPDATE "{self._table}" SET {sets} WHERE id = ?', updates)
        if inserts:
            self._insert_rows(conn, inserts, columns)
        return result

    def _apply(self, conn: sqlite3.Connection, op: WriteOp, columns: dict[str, str]) -> WriteResult:
        if isinstance(op, InsertOne):
            self._insert(conn, op.document, self._engine.next_seq(1), columns)
            return WriteResult(inserted=1)
        current = next(self._iter_docs(op.filter, limit=1), None)
        if isinstance(op, DeleteOne):
            if current is None:
                return WriteResult()
            conn.execute(f'DELETE FROM "{self._table}" WHERE id = ?', (planner.encode_id(current["_id"]),))
            return WriteResult(deleted=1)
        if isinstance(op, UpdateOne):
            if current is None:
                if not op.upsert:
                    return WriteResult()
                new = mql.apply_update(mql.upsert_seed(op.filter), op.update, is_insert=True)
            else:
                new = mql.apply_update(current, op.update)
        elif isinstance(op, ReplaceOne):
            if any(k.startswith("$") for k in op.replacement):
                raise InputError("a replacement document cannot contain update operators; use update_one")
            seed = current if current is not None else mql.upsert_seed(op.filter)
            if current is None and not op.upsert:
                return WriteResult()
            new = dict(op.replacement)
            if "_id" in new and "_id" in seed and new["_id"] != seed["_id"]:
                raise InputError("the _id of a document cannot be changed by a replace")
            if "_id" in seed:
                new = {"_id": seed["_id"], **{k: v for k, v in new.items() if k != "_id"}}
        else:
            raise InputError(f"unknown bulk operation {op!r}")
        if current is None:
            new_id = self._insert(conn, new, self._engine.next_seq(1), columns)
            return WriteResult(upserted_ids=[new_id])
        if new == current:
            return WriteResult(matched=1)
        self._write_back(conn, new, columns)
        return WriteResult(matched=1, modified=1)

    def create_index(self, field_name: str, unique: bool = False) -> None:
        column = index_column(field_name)
        self._engine.ensure_table(self.name)
        if field_name in self._engine.indexes(self.name):
            return
        with self._engine.write() as conn:
            if field_name in self._engine.indexes(self.name):  # another process won the race
                return
            conn.execute(f'ALTER TABLE "{self._table}" ADD COLUMN {column}')
            rows = conn.execute(f'SELECT pos, doc FROM "{self._table}"').fetchall()
            conn.executemany(
                f'UPDATE "{self._table}" SET {column} = ? WHERE pos = ?',
                [(planner.index_key(mql.get_path(bson.decode(blob), field_name)), pos) for pos, blob in rows],
            )
            kind = "UNIQUE INDEX" if unique else "INDEX"
            try:
                conn.execute(f'CREATE {kind} "{self._table}__{column}" ON "{self._table}" ({column})')
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(f"{self.name}: cannot make {field_name!r} unique, it has duplicates") from exc
            conn.execute(
                "INSERT INTO _meta_indexes (collection, field, unique_) VALUES (?, ?, ?)",
                (self.name, field_name, int(unique)),
            )

    def index_fields(self) -> list[str]:
        """Fields with an index (besides ``_id``)."""
        return list(self._engine.indexes(self.name))


class _DatabaseView:
    """What mongomock's ``$lookup`` needs from a database: collections by name."""

    def __init__(self, store: EmbeddedStore):
        self._store = store

    def get_collection(self, name: str) -> EmbeddedCollection:
        return self._store.collection(name)


class EmbeddedStore(Store):
    """The embedded document store (``embedded:PATH``, or ``memory:`` with no file)."""

    def __init__(self, path: Path | None):
        self.backend = "embedded" if path is not None else "memory"
        self.location = str(path) if path is not None else "memory:"
        self.engine = SQLiteEngine(path)
        self._collections: dict[str, EmbeddedCollection] = {}

    def collection(self, name: str) -> EmbeddedCollection:
        if name not in self._collections:
            self._collections[name] = EmbeddedCollection(self, name)
        return self._collections[name]

    def list_collections(self) -> list[str]:
        return self.engine.list_tables()

    def drop_collection(self, name: str) -> None:
        self.engine.drop_table(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.engine.write():
            yield

    def feed_position(self, collection: str) -> str:
        return f"{TOKEN_PREFIX}{self.engine.current_seq()}"

    def changes(self, collection: str, after: str | None = None, limit: int = 1000) -> ChangeBatch:
        start = _parse_token(after)
        table = table_name(collection)
        exists = self.engine.table_exists(collection)
        with self.engine.snapshot() as conn:
            # rows and the sequence are read in one snapshot, so "caught up" is never premature
            current = conn.execute("SELECT seq FROM _meta_sequence WHERE id = 1").fetchone()[0]
            rows = []
            if exists:
                rows = conn.execute(
                    f'SELECT seq, version, doc FROM "{table}" WHERE seq > ? ORDER BY seq LIMIT ?',
                    (start, int(limit)),
                ).fetchall()
        if start > current:
            raise ChangeFeedLost(
                f"resume token {after!r} is ahead of this store's history (the store was recreated); "
                "rescan from a watermark"
            )
        changes = []
        for seq, version, blob in rows:
            doc = bson.decode(blob)
            changes.append(Change("insert" if version == 1 else "update", doc["_id"], doc, f"{TOKEN_PREFIX}{seq}"))
        full = len(rows) == int(limit)
        token = changes[-1].token if full else f"{TOKEN_PREFIX}{max(current, start)}"
        return ChangeBatch(changes, token)

    def close(self) -> None:
        self.engine.close()


def _parse_token(token: str | None) -> int:
    if token is None:
        return 0
    if isinstance(token, str) and token.startswith(TOKEN_PREFIX) and token[len(TOKEN_PREFIX):].isdigit():
        return int(token[len(TOKEN_PREFIX):])
    raise StoreError(f"resume token {token!r} was not made by the embedded store; start without a token")
