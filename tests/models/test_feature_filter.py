"""Empty and constant features are dropped with one line; a store with only ids, signup dates and purchases trains
cleanly (no sklearn warning flood), and its new customers are scored by a model of their own."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from custscore.config import Settings
from custscore.ingest import ingest_file
from custscore.models import feature_reads
from custscore.models.dataset import TaskData
from custscore.models.feature_filter import drop_uninformative, summary, uninformative
from custscore.models.predict import load_production
from custscore.models.train import TrainOptions, train
from custscore.simulator.generate import SimulationConfig, simulate
from custscore.store import open_store


def _frame():
    return pd.DataFrame({"age": [np.nan] * 4, "income": [np.nan] * 4, "region": ["n", "n", None, "n"],
                         "tenure_days": [1.0, 2.0, 3.0, 4.0], "channel": [None] * 4})


def test_uninformative_names_empty_and_constant_columns():
    assert uninformative(_frame()) == {"age": "empty", "income": "empty", "region": "constant", "channel": "empty"}
    assert summary(uninformative(_frame())) == ("dropped age, income, channel: no values in the training data; "
                                                "region: the same value for every customer")
    assert summary({}) == ""


def test_drop_uninformative_removes_them_from_the_task_and_says_so():
    X = _frame()
    data = TaskData("churn", "classification", X, pd.Series([0, 1, 0, 1], index=X.index), dt.datetime(2026, 1, 1),
                    ["age", "income", "tenure_days"], ["region", "channel"], ["first note"])
    out = drop_uninformative(data)
    assert list(out.X.columns) == ["tenure_days"] and out.numeric == ["tenure_days"] and out.categorical == []
    assert out.notes == ["first note", "dropped age, income, channel: no values in the training data; "
                                       "region: the same value for every customer"]
    assert data.X.shape[1] == 5  # the input is not changed


@pytest.fixture(scope="module")
def bare_store(tmp_path_factory):
    """What a business loads: customer_id and signup_date; purchases with id, ts, amount and quantity only."""
    home = tmp_path_factory.mktemp("bare")
    customers, events = [], []
    for batch in simulate(SimulationConfig(n_customers=900, seed=11, end=dt.datetime(2026, 1, 1))):
        customers += [{"customer_id": c["_id"], "signup_date": c["signup_date"]} for c in batch.customers]
        events += [{"customer_id": e["customer_id"], "ts": e["ts"], "amount": e["amount"],
                    "quantity": e.get("quantity", 1)} for e in batch.events]
    pd.DataFrame(customers).to_csv(home / "customers.csv", index=False)
    pd.DataFrame(events).to_csv(home / "events.csv", index=False)
    settings = Settings.build(mongo_uri="memory:", home=home, environ={})
    store = open_store(settings)
    assert not ingest_file(store, "customers", home / "customers.csv").problems
    assert not ingest_file(store, "events", home / "events.csv").problems
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = train(store, settings, TrainOptions(cv=2, seed=0, families=("linear", "gboost", "bgnbd")))
    yield store, settings, {r.task: r for r in results}, caught
    store.close()


@pytest.mark.slow
def test_bare_store_trains_every_task_it_can_without_a_warning_flood(bare_store):
    _, _, results, caught = bare_store
    assert list(results) == ["churn", "first_purchase", "segment"]  # no survey data: satisfaction is skipped
    ours = [w for w in caught if "sklearn" in w.filename or "imblearn" in w.filename or "xgboost" in w.filename]
    assert ours == [], [str(w.message)[:120] for w in ours]
    assert not [w for w in caught if "observed values" in str(w.message) or "all-NaN" in str(w.message)]
    assert len(caught) < 10, [str(w.message)[:120] for w in caught]
    dropped = [n for n in results["churn"].notes if n.startswith("dropped ")]
    assert dropped == ["dropped age, income, support_tickets, customer_satisfaction, tickets_per_year, age_x_income, "
                       "region, channel, top_category: no values in the training data; category_count, "
                       "category_entropy: the same value for every customer"]


@pytest.mark.slow
def test_bare_store_scores_buyers_with_customer_base_values_and_new_signups_as_new(bare_store):
    store, settings, results, _ = bare_store
    board = results["churn"].leaderboard
    assert {"test_brier_raw", "test_brier", "test_ece_raw", "test_ece"} <= set(board.columns)
    assert "bgnbd" in set(board["model"])
    models = load_production(store, settings)
    docs = feature_reads.read_customers(store)
    as_of = dt.datetime(2026, 1, 1)
    events = feature_reads.read_events(store, until=as_of)
    buyer = next(d for d in docs if d["_id"] in set(events["customer_id"]))
    newcomer = {"_id": "NEW-1", "signup_date": dt.datetime(2025, 12, 20)}
    scored = {s.customer_id: s for s in models.score_documents([buyer, newcomer], events, as_of)}
    b, n = scored[buyer["_id"]].score, scored["NEW-1"].score
    assert b["risk"] in ("low", "medium", "high") and 0 <= b["churn_probability"] <= 1
    assert 0 <= b["p_alive"] <= 1 and b["expected_purchases"] >= 0 and b["clv_12m"] >= 0
    assert b["reasons_task"] == "churn" and "first_purchase_probability" not in b
    assert n["risk"] == "new" and n["reasons_task"] == "first_purchase"
    assert n["churn_probability"] == pytest.approx(1 - n["first_purchase_probability"], abs=1e-4)
    assert "p_alive" not in n
    assert set(scored["NEW-1"].reasons_by_task) == {"first_purchase", "segment"}  # churn says nothing about them
    assert all(r["sentence"].endswith("first-purchase chance") for r in n["reasons"])
    assert "churn" not in scored["NEW-1"].shap and "first_purchase" not in scored[buyer["_id"]].shap
