"""The MongoDB backend: the store surface on a real server through pymongo.

Change feed: change streams (``startAfter``) on a replica set or sharded
cluster; on a standalone mongod it falls back to polling a per-collection
watermark field (``updated_at`` on customers), ordered by (field, _id).
Transactions wrap a client session on a replica set and are a no-op on a
standalone server (each batch write is then not atomic).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import bson
import pymongo
from pymongo import errors as pm_errors

from custscore.errors import ChangeFeedLost, StoreError, StoreUnavailable
from custscore.redact import redact as redact_text
from custscore.store import base, limits
from custscore.store.boundary import mapped

log = logging.getLogger(__name__)
HISTORY_LOST = 286  # ChangeStreamHistoryLost
STREAM_PREFIX, POLL_PREFIX = "cs:", "poll:"
# Collections whose standalone-server feed polls a watermark field (set on every write we make).
POLL_FIELDS = {"customers": "updated_at", "events": "ingested_at"}


def redact(uri: str) -> str:
    """The URI without its password, safe to print (multi-host URIs too; see custscore.redact)."""
    return redact_text(uri)


class MongoCollection(base.Collection):
    """A pymongo collection behind the store surface."""

    def __init__(self, store: MongoStore, name: str):
        self.name = name
        self._store = store
        self._coll = store.db[name]

    def _session(self) -> Any:
        return self._store.current_session()

    def run_find(self, query: base.Find) -> Iterator[dict]:
        with mapped(f"find in {self.name}", query=True):
            cursor = self._coll.find(query.filter or {}, query.projection, skip=query.skip, limit=query.limit,
                                     session=self._session())
            left = limits.remaining()  # a query's time budget becomes the server's maxTimeMS
            if left is not None:
                cursor = cursor.max_time_ms(max(1, int(left * 1000)))
            if query.sort:
                cursor = cursor.sort(list(query.sort))
            yield from cursor

    def count(self, filter: dict | None = None) -> int:
        base.check_no_javascript(filter)
        with mapped(f"count in {self.name}"):
            if not filter:
                return self._coll.estimated_document_count() if self._session() is None else self._coll.count_documents({}, session=self._session())
            return self._coll.count_documents(filter, session=self._session())

    def distinct(self, field_name: str, filter: dict | None = None) -> list:
        base.check_no_javascript(filter)
        with mapped(f"distinct in {self.name}"):
            return [v for v in self._coll.distinct(field_name, filter or {}, session=self._session()) if v is not None]

    def aggregate(self, pipeline: list[dict]) -> list[dict]:
        base.check_no_javascript(pipeline)
        with mapped(f"aggregate on {self.name}"):
            return list(self._coll.aggregate(pipeline, allowDiskUse=True, session=self._session()))

    def insert_many(self, documents: Sequence[dict]) -> list:
        docs = [dict(d) for d in documents]
        if not docs:
            return []
        for doc in docs:
            limits.check_document(doc, f"document {doc.get('_id')!r}")
        with mapped(f"insert into {self.name}"):
            return list(self._coll.insert_many(docs, ordered=True, session=self._session()).inserted_ids)

    def apply_writes(self, ops: list[base.WriteOp]) -> base.WriteResult:
        requests = []
        for op in ops:
            if isinstance(op, base.InsertOne):
                limits.check_document(op.document, f"document {op.document.get('_id')!r}")
                requests.append(pymongo.InsertOne(dict(op.document)))
            elif isinstance(op, base.UpdateOne):
                for value in op.update.values():
                    if isinstance(value, dict):
                        limits.check_document(value, f"an update of {op.filter.get('_id', 'a document')!r}")
                requests.append(pymongo.UpdateOne(op.filter, op.update, upsert=op.upsert))
            elif isinstance(op, base.ReplaceOne):
                limits.check_document(op.replacement, f"document {op.replacement.get('_id')!r}")
                requests.append(pymongo.ReplaceOne(op.filter, op.replacement, upsert=op.upsert))
            else:  # DeleteOne (Collection.bulk_write refuses other ops)
                requests.append(pymongo.DeleteOne(op.filter))
        with mapped(f"bulk write to {self.name}"):
            res = self._coll.bulk_write(requests, ordered=True, session=self._session())
        return base.WriteResult(
            inserted=res.inserted_count,
            matched=res.matched_count,
            modified=res.modified_count,
            deleted=res.deleted_count,
            upserted_ids=list(res.upserted_ids.values()),
        )

    def update_many(self, filter: dict, update: dict) -> base.WriteResult:
        base.check_no_javascript(filter)
        with mapped(f"update in {self.name}"):
            res = self._coll.update_many(filter, update, session=self._session())
        return base.WriteResult(matched=res.matched_count, modified=res.modified_count)

    def delete_many(self, filter: dict) -> base.WriteResult:
        base.check_no_javascript(filter)
        with mapped(f"delete in {self.name}"):
            return base.WriteResult(deleted=self._coll.delete_many(filter, session=self._session()).deleted_count)

    def create_index(self, field_name: str, unique: bool = False) -> None:
        with mapped(f"create index on {self.name}.{field_name}"):
            self._coll.create_index([(field_name, pymongo.ASCENDING)], unique=unique)

    def index_fields(self) -> list[str]:
        """Fields with an index (besides ``_id``)."""
        with mapped(f"list indexes of {self.name}"):
            return [key for ix in self._coll.list_indexes() for key, _ in ix["key"].items() if key != "_id"]


class MongoStore(base.Store):
    """A MongoDB database reached through pymongo."""

    backend = "mongodb"

    def __init__(self, uri: str, db_name: str, timeout_ms: int = 5000, client: Any = None):
        self.location = redact(uri)
        self._local = threading.local()
        try:
            options: dict = {"tz_aware": False, "uuidRepresentation": "standard"}
            if "serverselectiontimeoutms" not in uri.lower():  # a timeout in the URI wins
                options["serverSelectionTimeoutMS"] = timeout_ms
            self.client = client or pymongo.MongoClient(uri, **options)
            hello = self.client.admin.command("hello")
        except (pm_errors.PyMongoError, ValueError) as exc:
            reason = redact_text(re.split(r" \(configured timeouts|, Timeout: |\n", str(exc))[0])
            raise StoreUnavailable(
                f"cannot reach MongoDB at {self.location}: {reason}; start one with "
                "`docker compose up -d mongo` or drop --mongo-uri to use the embedded store"
            ) from exc
        self.replica_set = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        self.db = self.client[db_name]

    def open_collection(self, name: str) -> MongoCollection:
        return MongoCollection(self, name)

    def list_collections(self) -> list[str]:
        with mapped("list collections"):
            return sorted(self.db.list_collection_names())

    def drop_collection(self, name: str) -> None:
        with mapped(f"drop {name}"):
            self.db.drop_collection(name)

    def current_session(self) -> Any:
        """The session of the transaction open on this thread, if any."""
        return getattr(self._local, "session", None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if not self.replica_set or self.current_session() is not None:
            yield
            return
        with self.client.start_session() as session, session.start_transaction():
            self._local.session = session
            try:
                yield
            finally:
                self._local.session = None

    # -- change feed --------------------------------------------------------------
    def _stream(self, collection: str, token: Any, ignore_fields: Sequence[str] = ()) -> Any:
        pipeline = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}}]
        if ignore_fields:
            pipeline.append(ignored_updates_filter(ignore_fields))
        return self.db[collection].watch(
            pipeline, full_document="updateLookup", start_after=token, max_await_time_ms=100
        )

    def feed_position(self, collection: str) -> str:
        if not self.replica_set:
            return self._poll_token(collection, None)
        with mapped(f"change stream on {collection}"), self._stream(collection, None) as stream:
            stream.try_next()
            return STREAM_PREFIX + _b64(stream.resume_token)

    def changes(self, collection: str, after: str | None = None, limit: int = 1000,
                ignore_fields: Sequence[str] = ()) -> base.ChangeBatch:
        if not self.replica_set or (after or "").startswith(POLL_PREFIX):
            return self._poll(collection, after, limit)
        token = _unb64(after[len(STREAM_PREFIX):]) if after else None
        if after and not after.startswith(STREAM_PREFIX):
            raise StoreError(f"resume token {after!r} was not made by MongoDB; start without a token")
        out: list[base.Change] = []
        try:
            with self._stream(collection, token, tuple(ignore_fields)) as stream:
                while len(out) < limit:
                    event = stream.try_next()
                    if event is None:
                        break
                    doc = event.get("fullDocument")
                    if doc is None:  # deleted before the lookup
                        continue
                    op = "insert" if event["operationType"] == "insert" else "update"
                    out.append(base.Change(op, doc["_id"], doc, STREAM_PREFIX + _b64(event["_id"])))
                resume = STREAM_PREFIX + _b64(stream.resume_token) if stream.resume_token else after
        except pm_errors.OperationFailure as exc:
            if exc.code == HISTORY_LOST:
                raise ChangeFeedLost(
                    f"resume token for {collection} is older than the oplog; rescan from a watermark"
                ) from exc
            raise StoreError(f"change stream on {collection}: {exc}") from exc
        except pm_errors.PyMongoError as exc:
            raise StoreUnavailable(f"change stream on {collection}: {exc}") from exc
        return base.ChangeBatch(out, resume)

    def _poll_token(self, collection: str, last: dict | None) -> str:
        field_name = POLL_FIELDS.get(collection, "updated_at")
        if last is None:
            last = next(iter(self.db[collection].find({}, {field_name: 1}).sort([(field_name, -1), ("_id", -1)]).limit(1)), None)
        mark = {"t": last.get(field_name), "id": last["_id"]} if last else {"t": None, "id": None}
        return POLL_PREFIX + _b64(mark)

    def _poll(self, collection: str, after: str | None, limit: int) -> base.ChangeBatch:
        field_name = POLL_FIELDS.get(collection, "updated_at")
        mark = _unb64(after[len(POLL_PREFIX):]) if after else {"t": None, "id": None}
        query: dict = {field_name: {"$ne": None}}
        if mark["t"] is not None:
            query = {"$or": [{field_name: {"$gt": mark["t"]}}, {field_name: mark["t"], "_id": {"$gt": mark["id"]}}]}
        with mapped(f"poll {collection}"):
            docs = list(self.db[collection].find(query).sort([(field_name, 1), ("_id", 1)]).limit(limit))
        changes = [base.Change("update", d["_id"], d, self._poll_token(collection, d)) for d in docs]
        return base.ChangeBatch(changes, changes[-1].token if changes else (after or self._poll_token(collection, None)))

    def close(self) -> None:
        self.client.close()


def ignored_updates_filter(fields: Sequence[str]) -> dict:
    """A change stream ``$match`` dropping updates whose set and removed fields all lie under ``fields``.

    The scorer's own ``score`` write-back is such an update: dropped on the server, it costs neither an
    ``updateLookup`` of the whole document nor a transfer. Inserts, replaces and other updates pass.
    (Written with operators mongomock's engine runs too, so the expression is tested without a server.)
    """
    keys = {"$concatArrays": [
        {"$map": {"input": {"$objectToArray": {"$ifNull": ["$updateDescription.updatedFields", {}]}},
                  "as": "u", "in": "$$u.k"}},
        {"$ifNull": ["$updateDescription.removedFields", []]},
    ]}
    tops = {"$map": {"input": keys, "as": "k", "in": {"$arrayElemAt": [{"$split": ["$$k", "."]}, 0]}}}
    others = {"$filter": {"input": tops, "as": "t", "cond": {"$and": [{"$ne": ["$$t", f]} for f in fields]}}}
    return {"$match": {"$expr": {"$or": [{"$ne": ["$operationType", "update"]}, {"$gt": [{"$size": others}, 0]}]}}}


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(bson.encode({"v": value})).decode()


def _unb64(text: str) -> Any:
    try:
        return bson.decode(base64.urlsafe_b64decode(text.encode()))["v"]
    except Exception as exc:
        raise StoreError(f"resume token {text!r} is damaged; start without a token") from exc
