"""Bulk loading: purchase_history stays equal to a recomputation from events; bad documents never land."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import history
from custscore.store.loading import load_customers, load_events
from custscore.store.validation import validate_customer

END = dt.datetime(2026, 6, 30)


def recomputed(store) -> dict:
    return history.summarize(store["events"].find())


def assert_summaries_match(store):
    expected = recomputed(store)
    for customer in store["customers"].find():
        got = customer["purchase_history"]
        want = expected.get(customer["_id"], history.empty_history())
        assert got["orders"] == want["orders"] and got["items"] == want["items"]
        assert got["total_spent"] == pytest.approx(want["total_spent"], abs=1e-6)
        assert got["categories"] == want["categories"]
        assert got.get("first_purchase") == want.get("first_purchase")
        assert got.get("last_purchase") == want.get("last_purchase")


def test_simulated_purchase_history_equals_recomputation_from_events(store):
    run_simulation(store, SimulationConfig(300, seed=4, end=END), batch_size=100)
    assert store["events"].count() > 1000
    assert_summaries_match(store)


def test_events_arriving_later_keep_the_summary_consistent(store):
    run_simulation(store, SimulationConfig(50, seed=5, end=END))
    new = [
        {"customer_id": f"C{i % 50 + 1:07d}", "ts": END + dt.timedelta(hours=i), "amount": 3.25 * i + 1, "category": "books"}
        for i in range(120)
    ]
    new[0]["ts"] = END - dt.timedelta(days=2000)  # an old event moves first_purchase back
    load_events(store, new[:70], batch_size=25)
    load_events(store, new[50:], batch_size=40)  # overlap: already-stored events are skipped
    assert store["events"].count({"ingested_at": {"$exists": True}}) >= 120
    assert_summaries_match(store)


junk = st.one_of(st.none(), st.integers(-10, 200), st.floats(allow_nan=True), st.text(max_size=5), st.booleans(),
                 st.dictionaries(st.sampled_from(["$x", "a.b", "ok"]), st.integers(), max_size=2))
raw_customers = st.fixed_dictionaries(
    {"customer_id": st.one_of(st.sampled_from(["a", "b", "c"]), junk)},
    optional={"signup_date": st.one_of(st.just("2024-01-01"), junk), "age": junk, "customer_satisfaction": junk,
              "income": junk, "extra": junk},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(raw_customers, max_size=8))
def test_only_valid_customers_are_stored_and_every_bad_one_is_reported(docs):
    from custscore.config import Settings
    from custscore.store import open_store

    store = open_store(Settings.build(mongo_uri="memory:", environ={}))
    report = load_customers(store, docs, batch_size=3)
    valid = {i for i, d in enumerate(docs) if validate_customer(d, i)[0] is not None}
    assert {p.index for p in report.problems} == set(range(len(docs))) - valid
    stored_ids = {d["_id"] for d in store["customers"].find()}
    assert stored_ids == {validate_customer(docs[i], i)[0]["_id"] for i in valid}
    for problem in report.problems:
        assert problem.field and problem.reason
