"""Issue 13 item 1: one document can never stop the scorer; every write path enforces MongoDB's limits."""

from __future__ import annotations

import threading

import pytest

from custscore.errors import LimitExceeded
from custscore.scorer.deadletters import list_dead_letters
from custscore.scorer.worker import Worker
from custscore.store import limits
from custscore.store.schema import CUSTOMERS
from tests.scorer.fakes import FakeRegistry
from tests.security.helpers import good, memory_store, nested, write_around_limits


def _scored(store) -> set:
    return {d["_id"] for d in store.collection(CUSTOMERS).find({"score": {"$exists": True}}, {"_id": 1})}


def test_a_document_nested_600_deep_is_dead_lettered_and_the_rest_scored(tmp_path, monkeypatch):
    store = memory_store(tmp_path)
    docs = [good(f"G{i:03d}") for i in range(40)]
    docs.insert(17, {**good("DEEP"), "notes": nested(600)})
    write_around_limits(store, docs, monkeypatch)
    registry = FakeRegistry()

    stats = Worker(store, registry.loader, registry.probe, batch_size=16).run_once()

    assert _scored(store) == {f"G{i:03d}" for i in range(40)}
    [letter] = list_dead_letters(store, limit=0)
    assert letter["doc_id"] == "DEEP" and stats.dead_letters == 1
    assert "nested more than 100 levels deep" in letter["reason"]
    assert letter["document"]["_id"] == "DEEP" and "_not_stored" in letter["document"]
    # a restart sees the same document again: still alive, still one dead letter
    Worker(store, registry.loader, registry.probe).run_once()
    assert len(list_dead_letters(store, limit=0)) == 1


def test_watch_keeps_going_past_a_deep_document_written_while_it_runs(tmp_path, monkeypatch):
    store = memory_store(tmp_path)
    registry = FakeRegistry()
    stop, seen = threading.Event(), threading.Event()
    worker = Worker(store, registry.loader, registry.probe, batch_size=4, max_wait_ms=0, poll_interval_s=0.01)

    def on_batch(stats):
        if stats.scored >= 5 and stats.dead_letters >= 1:
            seen.set()
            stop.set()

    thread = threading.Thread(target=worker.run, args=(stop, on_batch))
    thread.start()
    write_around_limits(store, [{**good("DEEP"), "x": nested(600)}], monkeypatch)
    store.collection(CUSTOMERS).insert_many([good(f"G{i}") for i in range(5)])
    finished = seen.wait(60)
    stop.set()
    thread.join(60)
    assert finished and not thread.is_alive()
    assert _scored(store) == {f"G{i}" for i in range(5)}


def test_a_score_that_cannot_be_written_dead_letters_that_customer_only(tmp_path, monkeypatch):
    store = memory_store(tmp_path)
    monkeypatch.setattr(limits, "MAX_DOCUMENT_BYTES", 64 * 1024)  # the 16 MB limit, scaled down to stay fast
    # a document just under the limit is stored; the same document plus its score is past it
    big = {**good("BIG"), "blob": "x" * (64 * 1024 - 400)}
    store.collection(CUSTOMERS).insert_many([good("G1"), big, good("G2")])
    registry = FakeRegistry()

    Worker(store, registry.loader, registry.probe).run_once()

    assert _scored(store) == {"G1", "G2"}
    [letter] = list_dead_letters(store, limit=0)
    assert letter["doc_id"] == "BIG" and "MB limit" in letter["reason"]


@pytest.mark.parametrize("doc, message", [
    ({"_id": "D", "x": nested(101)}, "cannot be stored: it is nested more than 100 levels deep"),
    ({"_id": "S", "x": "y" * (16 * 1024 * 1024 + 1)}, "MB of BSON, more than MongoDB's 16 MB limit"),
    ({"_id": "K", "a\x00b": 1}, "field names may not contain a NUL byte"),
    ({"_id": "U", "x": "a\ud800"}, "is not valid UTF-8 text"),
    ({"_id": "I", "x": 10**400}, "is too large an integer"),
])
def test_every_write_path_refuses_what_mongodb_refuses(store, doc, message):
    from custscore.store.base import InsertOne, ReplaceOne, UpdateOne

    coll = store.collection("scratch")
    coll.insert_one({"_id": doc["_id"]})
    body = {k: v for k, v in doc.items() if k != "_id"}
    for write in (
        lambda: coll.insert_many([{**doc, "_id": doc["_id"] + "2"}]),
        lambda: coll.bulk_write([InsertOne({**doc, "_id": doc["_id"] + "3"})]),
        lambda: coll.bulk_write([ReplaceOne({"_id": doc["_id"]}, doc)]),
        lambda: coll.bulk_write([UpdateOne({"_id": doc["_id"]}, {"$set": body})]),
    ):
        with pytest.raises(LimitExceeded) as err:
            write()
        assert message in str(err.value)
    assert coll.count() == 1


def test_100_levels_are_still_storable(store):
    coll = store.collection("scratch")
    coll.insert_one({"_id": "ok", "x": nested(98)})  # the document itself is level 1, its leaf dict level 100
    assert coll.find_one({"_id": "ok"})["_id"] == "ok"
