"""A customer's reasons do not depend on the batch it was scored in (issue 12 item 3).

The worker explains customers in micro-batches, ``explain`` and the API one at a time. Both go through
``ProductionModels.score_documents``; these tests pin the two places where the batch used to leak in: the
permutation explainer's feature order (drawn per batch position) and the category entropy (a row sum over the
batch's category columns).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from custscore.models.explain import make_explainer, row_orders, top_reasons
from custscore.models.features import customer_features

NUMS = ["recency_days", "orders_90d", "income", "age", "tenure_days"]


def _frame(n=120, seed=3):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({c: rng.normal(size=n) for c in NUMS}, index=[f"c{i:03d}" for i in range(n)])
    X["region"] = pd.Series(rng.choice(["north", "south", "east"], size=n), index=X.index, dtype=object)
    y = (X["recency_days"] + 0.5 * X["age"] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def _permutation_explainer(X, y):
    prep = ColumnTransformer([("num", StandardScaler(), NUMS),
                              ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["region"])])
    model = VotingClassifier([("linear", LogisticRegression()), ("knn", KNeighborsClassifier(15))], voting="soft")
    pipe = Pipeline([("prep", prep), ("model", model)]).fit(X, y)
    explainer = make_explainer(pipe, X, "classification", seed=0)
    assert explainer.method == "permutation"
    return explainer


def test_permutation_reasons_of_a_customer_alone_equal_its_reasons_in_any_batch():
    X, y = _frame()
    explainer = _permutation_explainer(X, y)
    batch = explainer.explain(X)
    reasons = top_reasons(batch, X, k=3)
    shuffled = X.sample(frac=1.0, random_state=1)
    again = explainer.explain(shuffled)
    position = {cid: i for i, cid in enumerate(shuffled.index)}
    for i, cid in enumerate(X.index[:25]):
        alone = explainer.explain(X.loc[[cid]])
        # the same feature orders; what is left is the models' own last-bit rounding of a batch against one row
        np.testing.assert_allclose(alone.values[0], batch.values[i], rtol=0, atol=1e-12, err_msg=cid)
        np.testing.assert_allclose(again.values[position[cid]], batch.values[i], rtol=0, atol=1e-12, err_msg=cid)
        assert top_reasons(alone, X.loc[[cid]], k=3)[0] == reasons[i]


def test_row_orders_follow_the_row_values_and_the_seed_only():
    Xt = np.random.default_rng(0).normal(size=(50, 6))
    orders = row_orders(Xt, 6, seed=0)
    assert sorted(orders[0].tolist()) == list(range(6))
    assert np.array_equal(row_orders(Xt[[7, 7, 3]], 6, seed=0), orders[[7, 7, 3]])
    assert not np.array_equal(row_orders(Xt, 6, seed=1), orders)
    assert len({tuple(o) for o in orders.tolist()}) > 40  # rows get different orders (720 possible)
    zeros = np.zeros((1, 3))
    assert np.array_equal(row_orders(zeros, 3), row_orders(-zeros, 3))


def test_category_entropy_of_a_customer_is_the_same_bits_alone_and_in_a_batch():
    as_of = dt.datetime(2026, 6, 30)
    cats = ["books", "home", "toys", "grocery", "beauty", "sports", "fashion", "electronics"]
    rng = np.random.default_rng(5)
    customers = [{"_id": f"C{i}", "signup_date": dt.datetime(2025, 1, 1), "age": 30, "income": 5e4,
                  "region": "north", "channel": "web", "support_tickets": 0} for i in range(50)]
    events = [{"customer_id": c["_id"], "ts": as_of - dt.timedelta(days=j + 1), "amount": 10.0 + j,
               "category": cats[rng.integers(len(cats))], "quantity": 1}
              for c in customers for j in range(int(rng.integers(1, 15)))]
    batch = customer_features(customers, events, as_of)["category_entropy"]
    for c in customers[:30]:  # the batch's row sum rounded differently for 10 of these before
        alone = customer_features([c], [e for e in events if e["customer_id"] == c["_id"]], as_of)
        assert alone.loc[c["_id"], "category_entropy"] == batch[c["_id"]], c["_id"]
    assert (batch > 0).any() and (batch >= 0).all()
