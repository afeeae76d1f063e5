"""The plain-Python features of a few customers equal customer_features' (to 1e-9), one customer or a batch."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from custscore.models.features import customer_features, events_frame, top_categories
from custscore.models.few_features import few_customer_features
from custscore.scorer.oneoff import validated_customers, validated_events
from custscore.simulator.generate import SimulationConfig, simulate

END = dt.datetime(2026, 1, 1)


def _simulated(n, seed, prefix="S"):
    customers, events = [], []
    for batch in simulate(SimulationConfig(n, seed=seed, end=END, id_prefix=prefix)):
        customers += batch.customers
        events += batch.events
    return customers, events


@pytest.fixture(scope="module")
def simulated():
    return _simulated(120, 3)


@pytest.fixture(scope="module")
def business():
    """The business-data shape: customers with a signup date only, events without category, strings validated."""
    customers, events = _simulated(80, 5, "B")
    cust = validated_customers([{"customer_id": c["_id"], "signup_date": f"{c['signup_date']:%Y-%m-%d}"}
                                for c in customers])
    ev = validated_events([{"customer_id": e["customer_id"], "ts": f"{e['ts']:%Y-%m-%d}", "amount": e["amount"],
                            "quantity": e.get("quantity")} for e in events])
    return cust, ev


def _same(customers, events, as_of, categories):
    fast = few_customer_features(customers, events, as_of, categories)
    slow = customer_features(customers, events, as_of, categories)
    assert fast is not None
    assert list(fast.columns) == list(slow.columns) and list(fast.index) == list(slow.index)
    assert list(fast.dtypes) == list(slow.dtypes)
    num = [c for c in slow.columns if slow[c].dtype == float]
    np.testing.assert_allclose(fast[num].to_numpy(), slow[num].to_numpy(), rtol=1e-9, atol=1e-9)
    other = [c for c in slow.columns if c not in num]
    # missing is None here and None or NaN from pandas (its .where gives either); the prep imputes both alike
    assert fast[other].to_dict("list") == slow[other].astype(object).where(slow[other].notna(), None).to_dict("list")


@pytest.mark.parametrize("fixture", ["simulated", "business"])
def test_one_customer_at_a_time_and_in_batches(fixture, request):
    customers, events = request.getfixturevalue(fixture)
    categories = top_categories(events_frame(events)) if fixture == "simulated" else []
    by_customer = {}
    for e in events:
        by_customer.setdefault(e["customer_id"], []).append(e)
    for as_of in (dt.datetime(2025, 7, 1, 12, 30), END):
        for c in customers[:40]:
            _same([c], by_customer.get(str(c["_id"]), []), as_of, categories)
        _same(customers[40:72], events, as_of, categories)


def test_missing_fields_no_events_and_unknown_categories():
    customers = [{"_id": "E"}, {"_id": "F", "age": 30, "income": None, "region": 5, "signup_date": END}]
    events = [{"customer_id": "F", "ts": END - dt.timedelta(days=3), "amount": 4.0, "category": None},
              {"customer_id": "F", "ts": END + dt.timedelta(days=3), "amount": 9.0, "category": "later"}]
    _same(customers, events, END, ["books", "later"])


def test_inputs_pandas_would_coerce_are_left_to_pandas():
    assert few_customer_features([{"_id": "A", "age": "40"}], [], END) is None
    assert few_customer_features([{"_id": "A"}], [{"customer_id": "A", "ts": "2025-01-01", "amount": 1}], END) is None
    assert few_customer_features([{"_id": "A"}, {"_id": "A"}], [], END) is None
    assert isinstance(few_customer_features([{"_id": "A"}], [], pd.Timestamp(END)), pd.DataFrame)
