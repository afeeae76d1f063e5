"""Change feeds leave out updates of ignored fields where the backend can (MongoDB, server-side)."""

from __future__ import annotations

import mongomock
import pytest

from custscore.store.mongo import ignored_updates_filter
from tests.conftest import make_settings


def change(i: int, op: str, updated: dict | None = None, removed: list | None = None) -> dict:
    event = {"i": i, "operationType": op}
    if op == "update":
        event["updateDescription"] = {"updatedFields": updated or {}, "removedFields": removed or []}
    return event


def test_the_stage_drops_only_updates_confined_to_the_ignored_fields():
    events = mongomock.MongoClient().db.events
    events.insert_many([
        change(1, "update", {"score": {"risk": "low"}}),
        change(2, "update", {"score.risk": "low", "age": 41}),
        change(3, "insert"),
        change(4, "update", {"scores": 1}),
        change(5, "update", {}, ["score"]),
        change(6, "update", {"score.risk": "high"}, ["age"]),
        change(7, "replace"),
        change(8, "update", {"score.risk": "high", "score.as_of": 1}, ["score.reasons"]),
    ])
    kept = [e["i"] for e in events.aggregate([ignored_updates_filter(["score"])])]
    assert kept == [2, 3, 4, 6, 7]


def test_embedded_feed_returns_every_change_whatever_is_ignored(tmp_path):
    from custscore.store import open_store

    with open_store(make_settings("embedded", tmp_path)) as store:
        coll = store.collection("customers")
        coll.insert_many([{"_id": "a", "age": 30}])
        start = store.feed_position("customers")
        coll.update_one({"_id": "a"}, {"$set": {"score": {"risk": "low"}}})
        assert [c.doc_id for c in store.changes("customers", after=start, ignore_fields=("score",)).changes] == ["a"]


def test_mongodb_change_stream_drops_score_only_updates(tmp_path):
    from custscore.store import open_store

    settings = make_settings("mongodb", tmp_path)  # skipped unless CUSTSCORE_TEST_MONGO_URI is set
    store = open_store(settings)
    try:
        if not store.replica_set:
            pytest.skip("change streams need a replica set")
        coll = store.collection("customers")
        coll.insert_many([{"_id": "a", "age": 30}, {"_id": "b", "age": 40}])
        start = store.feed_position("customers")
        coll.update_one({"_id": "a"}, {"$set": {"score": {"risk": "low"}}})
        coll.update_one({"_id": "b"}, {"$set": {"age": 41}})
        coll.insert_many([{"_id": "c", "age": 50}])
        kept = store.changes("customers", after=start, ignore_fields=("score",))
        assert [c.doc_id for c in kept.changes] == ["b", "c"]
        every = store.changes("customers", after=start)
        assert [c.doc_id for c in every.changes] == ["a", "b", "c"]
        assert store.changes("customers", after=kept.token, ignore_fields=("score",)).changes == []
    finally:
        store.client.drop_database(settings.db_name)
        store.close()
