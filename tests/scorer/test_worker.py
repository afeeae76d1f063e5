"""The worker end to end on the embedded store with fake models: scoring, idempotency, hot reload, stop."""

from __future__ import annotations

import logging
import threading

import pytest

from custscore.scorer.feed import stale_items
from custscore.scorer.partition import Partition
from custscore.scorer.state import worker_alive
from custscore.scorer.worker import Worker
from custscore.scorer.writeback import prediction_id
from custscore.store.loading import load_customers, load_events
from custscore.store.schema import CUSTOMERS, PREDICTIONS, SCORER_STATE
from tests.scorer.fakes import (
    VERSIONS,
    EventFakeModels,
    FakeModels,
    FakeRegistry,
    event_counts,
    input_version,
    open_embedded,
    purchase,
    simulate,
)


@pytest.fixture
def store(tmp_path):
    st = open_embedded(tmp_path / "store.sqlite")
    yield st
    st.close()


def scores(store) -> dict:
    return {d["_id"]: d.get("score") for d in store.collection(CUSTOMERS).find({})}


def test_every_customer_scored_once_and_a_rerun_writes_nothing(store):
    ids = simulate(store, 40)
    registry = FakeRegistry()
    stats = Worker(store, registry.loader, registry.probe, batch_size=16).run_once()

    assert stats.scored == 40 and stats.dead_letters == 0
    first = scores(store)
    counts = event_counts(store, ids)
    for cid in ids:
        score = first[cid]
        assert score["model_versions"] == VERSIONS
        assert score["reasons"] and score["reasons"][0]["sentence"]
        assert score["risk"] in {"low", "medium", "high"}
        assert score["latency_ms"] is not None
        doc = store.collection(CUSTOMERS).find_one({"_id": cid})
        assert score["input_version"] == input_version(doc, counts[cid])
    predictions = list(store.collection(PREDICTIONS).find({}))
    assert sorted(p["customer_id"] for p in predictions) == sorted(ids)
    assert all(p["shap"]["churn"] and p["features"] and p["reasons"] for p in predictions)

    customers_pos, predictions_pos = store.feed_position(CUSTOMERS), store.feed_position(PREDICTIONS)
    again = Worker(store, registry.loader, registry.probe, batch_size=16).run_once()
    assert again.scored == 0
    assert store.changes(CUSTOMERS, after=customers_pos).changes == []
    assert store.changes(PREDICTIONS, after=predictions_pos).changes == []
    assert scores(store) == first


def test_a_new_event_rescores_only_its_customer(store):
    ids = simulate(store, 30)
    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe).run_once()
    before = scores(store)

    load_events(store, [purchase(ids[3])])
    stats = Worker(store, registry.loader, registry.probe).run_once()

    after = scores(store)
    assert stats.scored == 1
    assert after[ids[3]]["input_version"] != before[ids[3]]["input_version"]
    assert {cid for cid in ids if after[cid] != before[cid]} == {ids[3]}
    assert store.collection(PREDICTIONS).count() == 31
    assert store.collection(PREDICTIONS).count({"customer_id": ids[3]}) == 2


def test_hot_reload_switches_at_the_next_batch_and_says_so(store, caplog):
    ids = simulate(store, 30)
    registry = FakeRegistry()
    seen: list[dict] = []

    def promote_after_first(stats):
        seen.append(dict(stats.versions))
        registry.versions = {**VERSIONS, "churn": "c2"}

    with caplog.at_level(logging.INFO, logger="custscore.scorer.worker"):
        stats = Worker(store, registry.loader, registry.probe, batch_size=10).run_once(on_batch=promote_after_first)

    assert seen[0]["churn"] == "c1" and seen[1]["churn"] == "c2"
    assert stats.switches == ["switched churn c1 -> c2"]
    assert "switched churn c1 -> c2" in caplog.text
    # customers of the first batch are rescored by the new models too
    assert {s["model_versions"]["churn"] for s in scores(store).values()} == {"c2"}
    assert store.collection(PREDICTIONS).count({"model_versions.churn": "c1"}) == 10
    assert store.collection(PREDICTIONS).count({"model_versions.churn": "c2"}) == len(ids)


def test_a_start_rescores_only_scores_of_other_models_and_keeps_scores_from_before_the_models_key(store):
    ids = simulate(store, 30)
    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe, batch_size=16).run_once()
    customers = store.collection(CUSTOMERS)
    assert customers.count({"score.models_key": "churn=c1|satisfaction=s1|segment=g1"}) == 30
    old = {**VERSIONS, "churn": "c0"}  # as a worker with the previous churn model wrote it
    customers.update_one({"_id": ids[0]}, {"$set": {"score.model_versions": old, "score.models_key": "churn=c0|x"}})
    customers.update_one({"_id": ids[1]}, {"$unset": {"score.models_key": ""}})  # written before the key existed
    kept = scores(store)[ids[1]]
    assert [item.customer_id for item in stale_items(store, VERSIONS, Partition(1, 0))] == [ids[0]]

    stats = Worker(store, registry.loader, registry.probe, batch_size=16).run_once()

    assert stats.scored == 1
    assert scores(store)[ids[0]]["model_versions"] == VERSIONS
    assert scores(store)[ids[1]] == kept


def test_run_scores_live_inserts_and_stops_cleanly(store):
    simulate(store, 10)
    registry = FakeRegistry()
    worker = Worker(store, registry.loader, registry.probe, batch_size=64, max_wait_ms=50, poll_interval_s=0.02)
    stop, first_ten, all_fifteen = threading.Event(), threading.Event(), threading.Event()
    batches: list = []

    def on_batch(stats):
        if stats.scored >= 10:  # the stored ten are scored: the feed positions were taken before, so inserts come live
            first_ten.set()
        if stats.scored >= 15:
            all_fifteen.set()

    thread = threading.Thread(target=lambda: batches.append(worker.run(stop, on_batch=on_batch)))
    thread.start()
    try:
        assert first_ten.wait(20), "the worker did not score the stored customers"
        assert worker_alive(store)
        load_customers(store, [{"customer_id": f"N{i}", "signup_date": "2024-01-01", "age": 30 + i} for i in range(5)])
        assert all_fifteen.wait(20), "live inserts were not scored"
        assert store.collection(CUSTOMERS).count({"score": {"$exists": True}}) == 15
    finally:
        stop.set()
        thread.join(timeout=20)
    stats = batches[0]
    assert stats.scored == 15
    assert stats.latency_p50_ms is not None and stats.latency_p99_ms >= stats.latency_p50_ms
    assert not worker_alive(store)
    state = store.collection(SCORER_STATE).find_one({"_id": "worker-1-0"})
    assert state["tokens"]["customers"] and state["running"] is False


def test_lost_change_feed_rescans_from_the_watermark(store, caplog):
    ids = simulate(store, 20)
    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe).run_once()
    load_customers(store, [{"customer_id": ids[0], "signup_date": "2024-01-01", "age": 77}])
    lost = {"customers": "seq:999999999", "events": "seq:999999999"}
    store.collection(SCORER_STATE).update_one({"_id": "worker-1-0"}, {"$set": {"tokens": lost}})

    with caplog.at_level(logging.WARNING, logger="custscore.scorer.feed"):
        stats = Worker(store, registry.loader, registry.probe).run_once()

    assert "rescanning from the watermark" in caplog.text
    assert stats.scored == 1
    doc = store.collection(CUSTOMERS).find_one({"_id": ids[0]})
    assert doc["age"] == 77 and doc["score"]["doc_hash"]
    key = prediction_id(ids[0], VERSIONS, doc["score"]["input_version"], doc["score"]["as_of"])
    assert store.collection(PREDICTIONS).find_one({"_id": key}) is not None


def test_same_contract_through_the_mongodb_adapter_with_its_polling_feed(monkeypatch):
    from tests.conftest import adapter_on_mongomock

    store = adapter_on_mongomock(monkeypatch)
    ids = simulate(store, 20)
    registry = FakeRegistry()
    assert Worker(store, registry.loader, registry.probe).run_once().scored == 20
    assert Worker(store, registry.loader, registry.probe).run_once().scored == 0
    load_events(store, [purchase(ids[2])])
    assert Worker(store, registry.loader, registry.probe).run_once().scored == 1
    assert store.collection(PREDICTIONS).count() == 21


def test_a_customer_in_both_the_feed_and_the_scan_is_scored_once(store):
    # tokens from before the customers exist: every customer is in the feed (its document and each of its
    # events, read in several polls) *and* in the start-up scan (no score yet)
    store.collection(SCORER_STATE).update_one(
        {"_id": "worker-1-0"}, {"$set": {"tokens": {"customers": "seq:0", "events": "seq:0"}}}, upsert=True)
    ids = simulate(store, 30)
    models = EventFakeModels()

    stats = Worker(store, lambda st: models, None, batch_size=8).run_once()

    assert stats.scored == 30
    assert sum(models.batches) == 30  # the models computed each customer once; later asks were skipped unscored
    assert sorted(p["customer_id"] for p in store.collection(PREDICTIONS).find({})) == sorted(ids)
    assert Worker(store, lambda st: models, None).run_once().scored == 0 and sum(models.batches) == 30


def test_own_score_writes_stay_out_of_the_feed_and_a_change_during_the_batch_is_scored_again(store):
    """The embedded feed leaves out the worker's score writes (no echo is read back), except one written on top of
    a change the worker has not read: another process changed the customer between the batch's read and its write."""
    from custscore.scorer.writeback import doc_hash

    changed = simulate(store, 6)[2]
    registry = FakeRegistry()
    first = Worker(store, registry.loader, registry.probe, batch_size=16).run_once()
    assert (first.scored, first.echoes) == (6, 0)

    class ChangedMidBatch(FakeModels):
        def score_batch(self, st, customers, now):
            out = super().score_batch(st, customers, now)
            if not self.batches[1:]:  # the first batch only: another writer changes the customer before our write lands
                st.collection(CUSTOMERS).update_one({"_id": changed}, {"$set": {"support_tickets": 9}})
            return out

    store.collection(CUSTOMERS).update_one({"_id": changed}, {"$set": {"support_tickets": 1}})
    models = ChangedMidBatch(versions=dict(VERSIONS))
    stats = Worker(store, lambda st: models, registry.probe, batch_size=16).run_once()
    doc = store.collection(CUSTOMERS).find_one({"_id": changed})
    assert doc["support_tickets"] == 9 and doc["score"]["doc_hash"] == doc_hash(doc)
    assert stats.scored == 2 and models.batches == [1, 1]  # scored, then scored again for the change it missed
