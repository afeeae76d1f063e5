"""Features as of a date, leakage-free churn labels and the oracles."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from custscore.config import Settings
from custscore.errors import InputError
from custscore.models import feature_catalogue, feature_reads, feature_words, input_version
from custscore.models import features as F
from custscore.models import labels as L
from custscore.simulator.generate import SimulationConfig, simulate
from custscore.store import open_store
from custscore.store.loading import load_simulated

END = dt.datetime(2026, 1, 1)


@pytest.fixture(scope="module")
def sim():
    customers, events = [], []
    for batch in simulate(SimulationConfig(n_customers=600, seed=3, end=END)):
        customers += batch.customers
        events += batch.events
    return customers, events


def _cust(cid="A", **kw):
    return {"_id": cid, "age": 40, "income": 50000.0, "region": "north", "channel": "web", "support_tickets": 2,
            "customer_satisfaction": 7, "signup_date": dt.datetime(2025, 1, 1), **kw}


def _ev(cid, day, amount=10.0, cat="books"):
    return {"customer_id": cid, "ts": dt.datetime(2025, 1, 1) + dt.timedelta(days=day), "amount": amount,
            "quantity": 2, "category": cat}


def test_hand_computed_features():
    events = [_ev("A", 10, 10.0, "books"), _ev("A", 100, 30.0, "toys"), _ev("A", 300, 20.0, "books")]
    as_of = dt.datetime(2025, 1, 1) + dt.timedelta(days=310)
    row = F.customer_features([_cust()], events, as_of).loc["A"]
    assert row["recency_days"] == pytest.approx(10.0)
    assert row["orders_total"] == 3 and row["orders_30d"] == 1 and row["orders_365d"] == 3
    assert row["spend_total"] == pytest.approx(60.0) and row["spend_mean"] == pytest.approx(20.0)
    assert row["items_per_order"] == pytest.approx(2.0)
    assert row["tenure_days"] == pytest.approx(310.0)
    assert row["gap_mean_days"] == pytest.approx(145.0)
    assert row["category_count"] == 2 and row["top_category"] == "books"
    assert row["age_x_income"] == pytest.approx(2000.0)


def test_later_events_are_invisible():
    events = [_ev("A", 10), _ev("A", 200, 999.0)]
    row = F.customer_features([_cust()], events, dt.datetime(2025, 3, 1)).loc["A"]
    assert row["orders_total"] == 1 and row["spend_total"] == pytest.approx(10.0)


def test_customer_without_events_or_fields_gets_nan_not_error():
    row = F.customer_features([{"_id": "B", "signup_date": dt.datetime(2025, 6, 1), "age": "n/a"}], [],
                              dt.datetime(2025, 7, 1)).loc["B"]
    assert np.isnan(row["recency_days"]) and np.isnan(row["age"]) and row["orders_total"] == 0
    assert row["region"] is None and row["top_category"] is None
    assert feature_words.describe("recency_days", row["recency_days"]) == "no purchase yet"


def test_training_and_scoring_paths_give_the_same_features(sim, tmp_path):
    """The trainer computes everyone from all events; the scorer computes one customer from the store."""
    customers, events = sim
    st = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    load_simulated(st, customers, events)
    as_of = END - dt.timedelta(days=30)
    everyone = F.customer_features(F.customers_frame(customers), F.events_frame(events), as_of)
    busy = everyone["orders_total"].idxmax()
    for cid in (busy, everyone.index[0]):
        one = feature_reads.features_for(st, [cid], as_of)
        pd.testing.assert_frame_equal(one.loc[[cid]], everyone.loc[[cid]], check_exact=False, rtol=1e-9)


def test_schema_lists_every_column():
    X = F.customer_features([_cust()], [_ev("A", 1)], dt.datetime(2025, 2, 1))
    assert list(X.columns) == feature_catalogue.FEATURE_NAMES
    assert set(feature_catalogue.numeric_features()) | set(feature_catalogue.categorical_features()) == set(feature_catalogue.FEATURE_NAMES)
    assert set(feature_catalogue.log_features()) <= set(feature_catalogue.numeric_features())
    assert all(X[c].dtype == float for c in feature_catalogue.numeric_features())


def test_document_hash_ignores_score_and_bookkeeping():
    doc = _cust()
    h = input_version.document_hash(doc)
    assert input_version.document_hash({**doc, "score": {"risk": "high"}, "updated_at": dt.datetime.now()}) == h
    assert input_version.document_hash({**doc, "age": 41}) != h


def test_input_version_changes_with_a_new_event():
    doc = _cust()
    v1 = input_version.input_versions([doc], F.events_frame([_ev("A", 1)]))["A"]
    v2 = input_version.input_versions([doc], F.events_frame([_ev("A", 1), _ev("A", 2)]))["A"]
    assert v1 != v2 and input_version.input_versions([doc], F.events_frame([_ev("A", 1)]))["A"] == v1


def test_churn_label_looks_only_after_the_cutoff():
    profiles = F.customers_frame([_cust("A"), _cust("B"), _cust("C"), _cust("D", signup_date=dt.datetime(2025, 12, 1))])
    ev = F.events_frame([_ev("A", 100), _ev("A", 200), _ev("B", 100), _ev("D", 340)])  # C never bought
    cutoff = dt.datetime(2025, 1, 1) + dt.timedelta(days=150)
    labels = L.churn_labels(profiles, ev, cutoff, 90)
    assert labels.to_dict() == {"A": 0, "B": 1}  # C never bought, D signed up later: not in the population
    # recency is a feature, not the label: B's label would be the same with a purchase the day before the cutoff
    ev2 = F.events_frame([_ev("A", 100), _ev("A", 200), _ev("B", 149)])
    assert L.churn_labels(profiles, ev2, cutoff, 90)["B"] == 1


def test_cutoff_outside_the_events_is_refused():
    with pytest.raises(InputError, match=r"cutoff=2025-12-01 needs events up to 2026-03-01 .* --cutoff 2025-10-03"):
        L.check_window(dt.datetime(2025, 12, 1), 90, dt.datetime(2025, 1, 1), dt.datetime(2026, 1, 1))


def test_oracles_rank_the_simulated_outcome(sim):
    from sklearn.metrics import roc_auc_score

    customers, events = sim
    profiles, ev = F.customers_frame(customers), F.events_frame(events)
    cutoff = L.default_cutoff(ev["ts"].max())
    y = L.churn_labels(profiles, ev, cutoff)
    truth = L.truth_frame(customers).loc[y.index]
    X = F.customer_features(profiles, ev, cutoff).loc[y.index]
    fair = roc_auc_score(y, L.churn_oracle(truth, X["recency_days"]))
    omniscient = roc_auc_score(y, L.churn_oracle_omniscient(truth, cutoff))
    assert 0.8 < fair < omniscient <= 1.0


def test_infer_and_encode_a_user_target():
    yes_no = pd.Series(["yes", "no", None, "yes"], index=list("abcd"), name="converted")
    assert L.infer_kind(yes_no) == "classification"
    encoded, classes = L.encode_target(yes_no, "classification")
    assert classes == ["no", "yes"] and encoded.to_dict() == {"a": 1, "b": 0, "d": 1}
    assert L.infer_kind(pd.Series([1.5, 2.0, 3.5], name="ltv")) == "regression"
    with pytest.raises(InputError, match="target field 'city' has 3 distinct non-numeric values"):
        L.infer_kind(pd.Series(["x", "y", "z"], name="city"))
