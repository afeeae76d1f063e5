"""The embedded backend: MongoDB semantics on SQLite, for one machine.

Documents live as BSON in SQLite (sqlite_engine.py). Reads are planned and
streamed by reading.py (SQL for ``_id`` and declared indexed fields through
planner.py, compiled filters from fast_filter.py, mongomock's filter engine for
the rest); aggregation pipelines run on mongomock's aggregation engine (with our
``$group``, grouping.py); the change feed is feed.py. This module holds the
collection and store classes and the writes. Engine errors are mapped to
custscore errors by boundary.py. Why ours and not mongomock or montydb:
ARCHITECTURE.md, "Store backends".
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bson
from mongomock import aggregate as mm_aggregate

from custscore.errors import DuplicateKeyError, InputError
from custscore.store import bson_elements, feed, grouping, limits, mql, planner, reading
from custscore.store.base import (
    ChangeBatch,
    Collection,
    DeleteOne,
    Find,
    InsertOne,
    ReplaceOne,
    Store,
    UpdateOne,
    WriteOp,
    WriteResult,
    check_no_javascript,
)
from custscore.store.boundary import mapped
from custscore.store.sqlite_engine import SQLiteEngine, index_column, table_name
from custscore.store.updates import (
    MISSING,
    by_id_keys,
    insert_once,
    inserted_fresh,
    set_changes,
    top_level,
    touched_fields,
)

log = logging.getLogger(__name__)


# an update: a new seq, the previous one kept (SQL evaluates the right-hand sides against the old row), the fields
# it changed (the change feed's echo test, store/feed.py)
_UPDATED = "prev_seq = seq, seq = ?, version = version + 1, doc = ?, touched = ?"


def _set_index(columns: dict[str, str], fields: dict, changed: list[str]) -> dict[str, Any]:
    """The index columns a top-level ``$set`` of ``fields`` moves: those under the ``changed`` fields."""
    keys = set(changed)
    return {c: planner.index_key(mql.get_path(fields, f)) for f, c in columns.items() if f.split(".", 1)[0] in keys}


def _encode(doc: dict) -> bytes:
    # MongoDB's limits (100 levels, 16 MB) on every write: see store/limits.py
    return limits.encode_document(doc, f"document {doc.get('_id')!r}")


class EmbeddedCollection(Collection):
    """A collection in the embedded store."""

    def __init__(self, store: EmbeddedStore, name: str):
        self.name = name
        self._store = store
        self._engine = store.engine
        self._table = table_name(name)

    # -- reading (reading.py) -------------------------------------------------------
    def run_find(self, query: Find) -> Iterator[dict]:
        sort, limit, skip = query.sort, query.limit, query.skip
        if sort and limit and len(sort) == 1 and sort[0][0] in self._engine.indexes(self.name):
            docs: Any = reading.index_ordered(self._engine, self.name, query.filter, sort[0][0], sort[0][1] < 0)
        elif sort:
            docs = mql.sort_documents(reading.iter_documents(self._engine, self.name, query.filter), sort)
        else:
            docs = reading.iter_documents(self._engine, self.name, query.filter, limit=(limit + skip) if limit else 0,
                                          fields=reading.top_fields(query.projection, query.filter))
        return self._window(docs, query)

    @staticmethod
    def _window(docs: Iterator[dict], query: Find) -> Iterator[dict]:
        """``skip``, ``limit`` and the projection applied while streaming."""
        for n, doc in enumerate(docs):
            if n < query.skip:
                continue
            if query.limit and n >= query.skip + query.limit:
                break
            yield mql.project(doc, query.projection)

    def find_in(self, field_name: str, values: Sequence, fields: Sequence[str], filter: dict | None = None
                ) -> dict[str, list]:
        return reading.columns_in(self._engine, self.name, field_name, values, fields, filter)

    def find_in_documents(self, field_name: str, values: Sequence, fields: Sequence[str], filter: dict | None = None
                          ) -> list[dict]:
        return reading.documents_in(self._engine, self.name, field_name, values, fields, filter)

    def find_columns(self, fields: Sequence[str], filter: dict | None = None) -> dict[str, list]:
        return reading.columns_where(self._engine, self.name, filter, fields)

    def count(self, filter: dict | None = None) -> int:
        return reading.count_documents(self._engine, self.name, filter)

    def distinct(self, field_name: str, filter: dict | None = None) -> list:
        seen: list = []
        keys: set = set()
        for doc in reading.iter_documents(self._engine, self.name, filter):
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
        docs = list(reading.iter_documents(self._engine, self.name, first))
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

    def _all_index(self, doc: dict, columns: dict[str, str]) -> dict[str, Any]:
        """Every index column of ``doc``: what a general update writes."""
        return dict(zip(columns.values(), self._index_values(doc, columns), strict=True))

    def _write_back(self, conn: sqlite3.Connection, current: dict, doc: dict, blob: bytes, columns: dict[str, str]
                    ) -> None:
        self._update_rows(conn, [(self._engine.next_seq(1), planner.encode_id(doc["_id"]), blob,
                                  touched_fields(current, doc), self._all_index(doc, columns))])

    def _updated_row(self, doc_id: Any, blob: bytes, update: dict, columns: dict[str, str]
                     ) -> tuple[bytes, str, dict[str, Any]] | None:
        """What an update of one stored row writes: ``(doc, touched, {index column: value})``, or None when it
        changes nothing. A ``$set`` of top-level fields on a document of 705 bytes or more is spliced into the stored
        bytes (bson_elements.py): only the values written are encoded and checked, and only their index columns
        recomputed."""
        what = f"document {doc_id!r}"
        if insert_once(update):
            return None  # an insert-once write (a prediction record) of a document that exists: nothing to decode
        fields = update.get("$set") if len(update) == 1 else None
        top_set = top_level(fields)
        # a document too small to be nested past the limit is decoded and encoded in C without a walk, faster than a
        # splice (bench/store.py's 3-field update: 34k/s against 30k/s); a larger one would be walked whole
        if top_set and len(blob) >= limits.min_bytes_past_nesting():
            try:
                spliced = bson_elements.set_elements(blob, limits.encode_document(fields, what))
            except bson_elements.MalformedBSON:  # not ours to walk: decode it below
                pass
            else:
                if spliced is None:
                    return None
                doc, changed = spliced
                limits.check_size(doc, what)
                return doc, ",".join(sorted(changed)), _set_index(columns, fields, changed)
        current = bson.decode(blob)
        if top_set:  # shares the untouched values, no deep copy
            changed = set_changes(current, fields)
            if not changed:
                return None
            doc = limits.encode_document({**current, **fields}, what)
            return doc, ",".join(sorted(changed)), _set_index(columns, fields, changed)
        new = mql.apply_update(current, update)
        doc = limits.encode_document(new, what)
        if doc == blob:  # the same BSON: MongoDB's no-op
            return None
        return doc, touched_fields(current, new), self._all_index(new, columns)

    def _update_rows(self, conn: sqlite3.Connection, rows: list[tuple[int, bytes, bytes, str, dict[str, Any]]]
                     ) -> None:
        """Write updated rows ``(seq, key, doc, touched, {index column: value})``: one ``executemany`` per set of
        index columns written."""
        self._engine.upgrade_for_update(conn, self.name)
        groups: dict[tuple[str, ...], list[list]] = {}
        for seq, key, doc, touched, index in rows:
            groups.setdefault(tuple(index), []).append([seq, doc, touched, *index.values(), key])
        for names, params in groups.items():
            sets = "".join(f", {c} = ?" for c in names)
            conn.executemany(f'UPDATE "{self._table}" SET {_UPDATED}{sets} WHERE id = ?', params)

    def update_one(self, filter: dict, update: dict, upsert: bool = False) -> WriteResult:
        """Update the first match of ``filter``; an update of one plain ``_id`` (no upsert) takes one short path:
        one schema check, one row read, one row written (a top-level ``$set`` spliced into the stored bytes)."""
        value = filter.get("_id", MISSING) if type(filter) is dict and len(filter) == 1 else MISSING
        if upsert or value is MISSING or isinstance(value, dict | list | tuple | dt.datetime) or type(update) is not dict:
            return super().update_one(filter, update, upsert)
        key = planner.encode_id(value)  # a plain value: no operator, so no server-side JavaScript to refuse
        with mapped(f"bulk write to {self.name}", query=True), self._engine.write() as conn:
            columns = self._engine.indexes_if_table(self.name)
            row = None if columns is None else conn.execute(
                f'SELECT doc FROM "{self._table}" WHERE id = ?', (key,)).fetchone()
            if row is None:
                return WriteResult()
            updated = self._updated_row(value, row[0], update, columns)
            if updated is None:
                return WriteResult(matched=1)
            self._update_rows(conn, [(self._engine.next_seq(1), key, *updated)])
            return WriteResult(matched=1, modified=1)

    def insert_many(self, documents: Sequence[dict]) -> list:
        docs = list(documents)
        if not docs:
            return []
        self._engine.ensure_table(self.name)
        with mapped(f"insert into {self.name}"), self._engine.write() as conn:
            columns = self._engine.indexes(self.name)
            first = self._engine.next_seq(len(docs))
            rows = [self._row(doc, first + i, columns) for i, doc in enumerate(docs)]
            self._insert_rows(conn, rows, columns)
            return [doc_id for doc_id, _ in rows]

    def apply_writes(self, ops: list[WriteOp]) -> WriteResult:
        self._engine.ensure_table(self.name)
        with mapped(f"bulk write to {self.name}", query=True), self._engine.write() as conn:
            columns = self._engine.indexes(self.name)
            ids = by_id_keys(ops)
            if ids is not None:
                return self._bulk_by_id(conn, ops, ids, columns)
            result = WriteResult()
            for op in ops:
                result.add(self._apply(conn, op, columns))
            return result

    def _bulk_by_id(self, conn: sqlite3.Connection, ops: Sequence[WriteOp], ids: list[tuple[bytes, Any]],
                    columns: dict[str, str]) -> WriteResult:
        """Updates/upserts of distinct ``_id`` values: one SELECT, the updates worked out per row, one
        ``executemany`` per kind of write and one sequence bump (same effect as applying them one by one)."""
        keys = [key for key, _ in ids]
        # insert-once writes only ask whether the document exists: its bytes are not read
        only_once = all(insert_once(op.update) for op in ops)
        column = "NULL" if only_once else "doc"
        stored: dict[bytes, bytes | None] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            stored.update(conn.execute(f'SELECT id, {column} FROM "{self._table}" '
                                       f'WHERE id IN ({",".join("?" * len(chunk))})', chunk).fetchall())
        result = WriteResult()
        writes: list[tuple[bytes, Any]] = []  # (key, an updated row or the document an upsert inserts), in op order
        for op, (key, doc_id) in zip(ops, ids, strict=True):
            blob = stored.get(key, MISSING)
            if blob is MISSING:
                if op.upsert:
                    writes.append((key, inserted_fresh(op.filter, op.update)))
                continue
            result.matched += 1
            if only_once:
                continue  # it exists: an insert-once write changes nothing
            updated = self._updated_row(doc_id, blob, op.update, columns)
            if updated is not None:
                writes.append((key, updated))
        if not writes:
            return result
        first = self._engine.next_seq(len(writes))  # in op order, as the feed will list them
        updates = [(first + n, key, *w) for n, (key, w) in enumerate(writes) if type(w) is tuple]
        inserts = [self._row(w, first + n, columns) for n, (_, w) in enumerate(writes) if type(w) is dict]
        if updates:
            self._update_rows(conn, updates)
            result.modified = len(updates)
        if inserts:
            self._insert_rows(conn, inserts, columns)
            result.upserted_ids.extend(doc_id for doc_id, _ in inserts)
        return result

    def _apply(self, conn: sqlite3.Connection, op: WriteOp, columns: dict[str, str]) -> WriteResult:
        if isinstance(op, InsertOne):
            self._insert(conn, op.document, self._engine.next_seq(1), columns)
            return WriteResult(inserted=1)
        current = next(reading.iter_documents(self._engine, self.name, op.filter, limit=1), None)
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
        else:  # pragma: no cover - Collection.bulk_write refuses other ops
            raise InputError(f"unknown bulk operation {op!r}")
        if current is None:
            new_id = self._insert(conn, new, self._engine.next_seq(1), columns)
            return WriteResult(upserted_ids=[new_id])
        blob = _encode(new)
        if blob == _encode(current):  # the same BSON: MongoDB's no-op (1, 1.0 and True are three values)
            return WriteResult(matched=1)
        self._write_back(conn, current, new, blob, columns)
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

    def open_collection(self, name: str) -> EmbeddedCollection:
        return EmbeddedCollection(self, name)

    def list_collections(self) -> list[str]:
        return self.engine.list_tables()

    def drop_collection(self, name: str) -> None:
        self.engine.drop_table(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.engine.write():
            yield

    def feed_position(self, collection: str) -> str:
        return feed.position(self.engine)

    def changes(self, collection: str, after: str | None = None, limit: int = 1000,
                ignore_fields: Sequence[str] = ()) -> ChangeBatch:
        return feed.read_changes(self.engine, collection, after, limit, ignore_fields)

    def close(self) -> None:
        self.engine.close()

