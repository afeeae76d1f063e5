"""Change feeds leave out updates of ignored fields: MongoDB on the server, the embedded store by its feed marks."""

from __future__ import annotations

import mongomock
import pytest

from custscore.store.base import UpdateOne
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


@pytest.mark.parametrize("backend", ["embedded", "mongodb"])
def test_score_only_updates_are_left_out_of_the_feed(backend, tmp_path):
    from custscore.store import open_store

    settings = make_settings(backend, tmp_path)  # mongodb: skipped unless CUSTSCORE_TEST_MONGO_URI is set
    store = open_store(settings)
    try:
        if backend == "mongodb" and not store.replica_set:
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
        coll.update_one({"_id": "a"}, {"$unset": {"score": ""}})
        assert store.changes("customers", after=kept.token, ignore_fields=("score",)).changes == []
    finally:
        if backend == "mongodb":
            store.client.drop_database(settings.db_name)
        store.close()


def test_embedded_feed_returns_a_score_written_on_top_of_a_change_not_yet_read(tmp_path):
    """The embedded feed keeps one version per document: the score write carries the unread change with it."""
    from custscore.store import open_store

    with open_store(make_settings("embedded", tmp_path)) as store:
        coll = store.collection("customers")
        coll.insert_many([{"_id": "a", "age": 30}])
        start = store.feed_position("customers")
        coll.update_one({"_id": "a"}, {"$set": {"age": 31}})
        coll.update_one({"_id": "a"}, {"$set": {"score": {"risk": "low"}}})
        [change] = store.changes("customers", after=start, ignore_fields=("score",)).changes
        assert change.document == {"_id": "a", "age": 31, "score": {"risk": "low"}}
        # a score over a score over the unread change: still returned
        coll.bulk_write([UpdateOne({"_id": "a"}, {"$set": {"score": {"risk": "high"}}})])
        [change] = store.changes("customers", after=start, ignore_fields=("score",)).changes
        assert change.document["score"] == {"risk": "high"}


def test_a_page_of_left_out_writes_moves_the_token_and_reads_on(tmp_path):
    from custscore.store import open_store

    with open_store(make_settings("embedded", tmp_path)) as store:
        coll = store.collection("customers")
        coll.insert_many([{"_id": i, "age": 30} for i in range(6)])
        start = store.feed_position("customers")
        coll.bulk_write([UpdateOne({"_id": i}, {"$set": {"score": {"n": i}}}) for i in range(5)])
        coll.update_one({"_id": 5}, {"$set": {"age": 31}})
        page = store.changes("customers", after=start, limit=2, ignore_fields=("score",))
        assert [c.doc_id for c in page.changes] == [5]
        assert page.token == store.feed_position("customers")
        coll.bulk_write([UpdateOne({"_id": i}, {"$set": {"score": {"n": -i}}}) for i in range(5)])
        assert store.changes("customers", after=page.token, limit=2, ignore_fields=("score",)).changes == []


def test_a_store_file_made_before_the_feed_marks_reads_and_upgrades_on_its_first_update(tmp_path):
    import sqlite3

    from custscore.store import open_store

    settings = make_settings("embedded", tmp_path)
    with open_store(settings) as store:
        store.collection("customers").insert_many([{"_id": "a", "age": 30}])
        start = store.feed_position("customers")
    raw = sqlite3.connect(tmp_path / "store.sqlite")
    raw.execute("ALTER TABLE c_customers DROP COLUMN touched")
    raw.execute("ALTER TABLE c_customers DROP COLUMN prev_seq")
    raw.commit()
    raw.close()
    with open_store(settings) as store:
        assert store.changes("customers", after=start, ignore_fields=("score",)).changes == []
        store.collection("customers").update_one({"_id": "a"}, {"$set": {"score": {"risk": "low"}}})
        assert store.changes("customers", after=start, ignore_fields=("score",)).changes == []
        assert [c.doc_id for c in store.changes("customers", after=start).changes] == ["a"]
