"""The churn example query is out of time, like models/labels.py: no leaky "quiet lately" rule."""

from __future__ import annotations

import datetime as dt

from custscore.config import Settings
from custscore.store import open_store
from custscore.store.loading import load_customers, load_events
from custscore.store.mirror import mirror
from custscore.store.sql import EXAMPLE_QUERIES, run_sql

LAST = dt.datetime(2025, 6, 30)
BEFORE = LAST - dt.timedelta(days=120)  # before the cutoff (last event - 90 days)
AFTER = LAST - dt.timedelta(days=30)  # inside the 90 days after the cutoff


def test_churn_counts_only_customers_who_had_bought_by_the_cutoff(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    people = {"stays": "north", "churns": "north", "newcomer": "north", "never": "north"}
    load_customers(store, [{"customer_id": c, "signup_date": "2024-01-01", "region": r} for c, r in people.items()])
    load_events(store, [
        {"customer_id": "stays", "ts": BEFORE, "amount": 10.0}, {"customer_id": "stays", "ts": LAST, "amount": 5.0},
        {"customer_id": "churns", "ts": BEFORE, "amount": 10.0},
        {"customer_id": "newcomer", "ts": AFTER, "amount": 10.0},  # first bought after the cutoff: not asked
    ])
    path = tmp_path / "mirror.sqlite"
    mirror(store, path)
    frame = run_sql(path, EXAMPLE_QUERIES["churn_rate_by_region"])
    assert frame.to_dict("records") == [{"region": "north", "customers": 2, "churn_rate": 0.5}]
