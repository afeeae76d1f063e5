"""The store surface every backend implements, and the small value types it uses.

The surface is a deliberate subset of pymongo's: what custscore needs, with the
same names and meanings, so code reads like MongoDB code and a backend is easy
to check against the contract suite (tests/store/test_contract.py).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from custscore.store.mql import get_path

SortSpec = Sequence[tuple[str, int]] | None

# Server-side JavaScript never runs through custscore: these operators are refused
# in filters and pipelines whatever the backend.
FORBIDDEN_OPERATORS = frozenset({"$where", "$function", "$accumulator"})


@dataclass(frozen=True)
class InsertOne:
    """Insert ``document`` (bulk_write op)."""

    document: dict


@dataclass(frozen=True)
class UpdateOne:
    """Apply ``update`` operators to the first match of ``filter`` (bulk_write op)."""

    filter: dict
    update: dict
    upsert: bool = False


@dataclass(frozen=True)
class ReplaceOne:
    """Replace the first match of ``filter`` with ``replacement`` (bulk_write op)."""

    filter: dict
    replacement: dict
    upsert: bool = False


@dataclass(frozen=True)
class DeleteOne:
    """Delete the first match of ``filter`` (bulk_write op)."""

    filter: dict


WriteOp = InsertOne | UpdateOne | ReplaceOne | DeleteOne


@dataclass
class WriteResult:
    """Counts of what a write did, plus the ``_id`` of anything upserted or inserted."""

    inserted: int = 0
    matched: int = 0
    modified: int = 0
    deleted: int = 0
    upserted_ids: list = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        """Accumulate another result into this one."""
        self.inserted += other.inserted
        self.matched += other.matched
        self.modified += other.modified
        self.deleted += other.deleted
        self.upserted_ids.extend(other.upserted_ids)


@dataclass(frozen=True)
class Find:
    """The arguments of one ``find``, checked (see :meth:`Collection.find`)."""

    filter: dict | None
    projection: dict | None
    sort: SortSpec
    limit: int
    skip: int


@dataclass(frozen=True)
class ChangeBatch:
    """What one ``changes`` call returns: the changes and the token to resume after them."""

    changes: list
    token: str | None


@dataclass(frozen=True)
class Change:
    """One entry of a change feed: the document as it is now, and where to resume after it."""

    operation: str  # "insert" or "update" (always "update" on the polling fallback, which cannot tell)
    doc_id: Any
    document: dict
    token: str


def check_no_javascript(spec: Any) -> None:
    """Raise if a filter or pipeline uses a server-side JavaScript operator."""
    from custscore.errors import InputError

    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in FORBIDDEN_OPERATORS:
                raise InputError(
                    f"operator {key} runs server-side JavaScript and is refused; "
                    "express the condition with query operators such as $gt, $in, $expr"
                )
            check_no_javascript(value)
    elif isinstance(spec, list | tuple):
        for item in spec:
            check_no_javascript(item)


class Collection(abc.ABC):
    """A named set of documents; the methods mirror pymongo's Collection."""

    name: str

    @abc.abstractmethod
    def insert_many(self, documents: Sequence[dict]) -> list:
        """Insert all documents atomically (all or none); return their ``_id`` values."""

    def find(
        self,
        filter: dict | None = None,
        projection: dict | None = None,
        sort: SortSpec = None,
        limit: int = 0,
        skip: int = 0,
    ) -> Iterator[dict]:
        """Iterate over matching documents (``limit`` 0: all), checked here the same way on every backend."""
        from custscore.errors import InputError

        if limit < 0 or skip < 0:
            raise InputError(f"limit and skip must be >= 0, got limit={limit}, skip={skip}")
        check_no_javascript(filter)
        return self.run_find(Find(filter, projection, sort, limit, skip))

    @abc.abstractmethod
    def run_find(self, query: Find) -> Iterator[dict]:
        """The backend's part of :meth:`find`, on arguments already checked."""

    def find_in(self, field_name: str, values: Sequence, fields: Sequence[str], filter: dict | None = None
                ) -> dict[str, list]:
        """The ``fields`` of every document whose ``field_name`` is one of ``values``, as columns.

        Parameters
        ----------
        field_name : str
            The field to look up, e.g. ``"customer_id"``.
        values : sequence
            The values wanted (a MongoDB ``$in``).
        fields : sequence of str
            Field paths to return; a document without one gives None in that column.
        filter : dict, optional
            Further conditions every returned document meets, e.g. ``{"ts": {"$lte": now}}``.

        Returns
        -------
        dict of str to list
            One list per field, in the same document order (insertion order on the embedded store).
        """
        if not values:
            return {f: [] for f in fields}
        return self.find_columns(fields, {field_name: {"$in": list(values)}, **(filter or {})})

    def find_in_documents(self, field_name: str, values: Sequence, fields: Sequence[str], filter: dict | None = None
                          ) -> list[dict]:
        """:meth:`find_in` as documents: each matching document, in the same order, holding at least the
        top-level fields of ``fields`` that it has (a missing field is left out, not None).

        For readers that take records (the models' plain path for a worker batch): the embedded store hands out
        its row cache's own dicts without building new ones, so callers read them and never change them.
        """
        if not values:
            return []
        tops = dict.fromkeys(f.split(".", 1)[0] for f in fields)
        return list(self.find({field_name: {"$in": list(values)}, **(filter or {})},
                              dict.fromkeys(tops, 1) | {"_id": int("_id" in tops)}))

    def find_columns(self, fields: Sequence[str], filter: dict | None = None) -> dict[str, list]:
        """The ``fields`` of every document matching ``filter`` (all when None), as columns.

        What a whole-collection read for a DataFrame needs (training reads every event): the server projects
        (MongoDB), or pages are decoded in one call each and appended to the columns (embedded), with no
        projected document per row. Columns as in :meth:`find_in`.
        """
        out: dict[str, list] = {f: [] for f in fields}
        for doc in self.find(filter, dict.fromkeys(fields, 1) | {"_id": int("_id" in fields)}):
            for name, column in out.items():
                column.append(get_path(doc, name))
        return out

    @abc.abstractmethod
    def count(self, filter: dict | None = None) -> int:
        """Number of matching documents."""

    def bulk_write(self, ops: Sequence[WriteOp]) -> WriteResult:
        """Apply the ops in order, atomically on the embedded store.

        Every op's filter is checked for server-side JavaScript here, whatever the backend,
        before anything is written.
        """
        from custscore.errors import InputError

        ops = list(ops)
        for op in ops:
            if not isinstance(op, InsertOne | UpdateOne | ReplaceOne | DeleteOne):
                raise InputError(f"unknown bulk operation {op!r}")
            if not isinstance(op, InsertOne):
                check_no_javascript(op.filter)
        return self.apply_writes(ops) if ops else WriteResult()

    @abc.abstractmethod
    def apply_writes(self, ops: list[WriteOp]) -> WriteResult:
        """The backend's part of :meth:`bulk_write`, on a non-empty list of checked ops."""

    @abc.abstractmethod
    def aggregate(self, pipeline: list[dict]) -> list[dict]:
        """Run an aggregation pipeline and return its documents."""

    @abc.abstractmethod
    def create_index(self, field_name: str, unique: bool = False) -> None:
        """Create an ascending index on one field, idempotently."""

    @abc.abstractmethod
    def index_fields(self) -> list[str]:
        """Fields with an index, besides ``_id``."""

    @abc.abstractmethod
    def distinct(self, field_name: str, filter: dict | None = None) -> list:
        """Distinct values of a field among matching documents."""

    def insert_one(self, document: dict) -> Any:
        """Insert one document and return its ``_id``."""
        return self.insert_many([document])[0]

    def find_one(self, filter: dict | None = None, projection: dict | None = None) -> dict | None:
        """The first matching document, or None."""
        return next(iter(self.find(filter, projection, limit=1)), None)

    def update_one(self, filter: dict, update: dict, upsert: bool = False) -> WriteResult:
        """Update the first match of ``filter``."""
        return self.bulk_write([UpdateOne(filter, update, upsert)])

    def update_many(self, filter: dict, update: dict) -> WriteResult:
        """Update every match of ``filter``."""
        ids = [d["_id"] for d in self.find(filter, {"_id": 1})]
        return self.bulk_write([UpdateOne({"_id": i}, update) for i in ids])

    def replace_one(self, filter: dict, replacement: dict, upsert: bool = False) -> WriteResult:
        """Replace the first match of ``filter``."""
        return self.bulk_write([ReplaceOne(filter, replacement, upsert)])

    def delete_one(self, filter: dict) -> WriteResult:
        """Delete the first match of ``filter``."""
        return self.bulk_write([DeleteOne(filter)])

    def delete_many(self, filter: dict) -> WriteResult:
        """Delete every match of ``filter``."""
        ids = [d["_id"] for d in self.find(filter, {"_id": 1})]
        return self.bulk_write([DeleteOne({"_id": i}) for i in ids])


class Store(abc.ABC):
    """One database: collections, transactions and change feeds."""

    backend: str  # "embedded", "memory" or "mongodb"
    location: str  # where it is, safe to show (no password)

    def collection(self, name: str) -> Collection:
        """The collection called ``name`` (created on first write); one object per name and store."""
        opened = self.__dict__.setdefault("_opened", {})
        if name not in opened:
            opened[name] = self.open_collection(name)
        return opened[name]

    @abc.abstractmethod
    def open_collection(self, name: str) -> Collection:
        """A new handle on the collection called ``name`` (:meth:`collection` keeps one per name)."""

    @abc.abstractmethod
    def list_collections(self) -> list[str]:
        """Names of the collections that exist."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None:
        """Remove a collection and its documents."""

    @abc.abstractmethod
    def feed_position(self, collection: str) -> str:
        """A token for "now": ``changes(after=token)`` returns only later writes."""

    @abc.abstractmethod
    def changes(self, collection: str, after: str | None = None, limit: int = 1000,
                ignore_fields: Sequence[str] = ()) -> ChangeBatch:
        """Documents inserted or updated after ``after`` (a token from an earlier batch).

        An update that only sets or removes fields under ``ignore_fields`` (e.g. the scorer's own
        ``score``) may be left out: MongoDB's change streams drop them on the server; the embedded
        store drops them when the document's previous change is at or before ``after`` (it keeps one
        version per document, so a score written on top of an unread change is returned with it).
        A consumer still checks what it gets (MongoDB without a replica set polls and drops nothing).

        ``after=None`` starts from the oldest history the backend keeps: every
        document on the embedded store; "now" on MongoDB, whose change streams
        cannot replay the past (scan first, with a position taken before the
        scan). Returns at most ``limit`` changes without blocking; no changes
        means caught up. A document changed several times may appear once, at
        its latest version. Raises ChangeFeedLost when the token is too old.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the writes inside the block all-or-nothing where the backend can."""
        yield

    def __getitem__(self, name: str) -> Collection:
        return self.collection(name)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
