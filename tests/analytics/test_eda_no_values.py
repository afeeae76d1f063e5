"""A business's own data without profile fields: the EDA says "drop: no values" and draws no empty figure."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from custscore.analytics import eda, findings, profiling
from custscore.analytics import figures as figs
from custscore.config import Settings
from custscore.store import open_store
from custscore.store.loading import load_customers, load_events


def _dataset(tmp_path) -> eda.Dataset:
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    ids = [f"c{i}" for i in range(40)]
    load_customers(store, [{"customer_id": c, "signup_date": dt.datetime(2024, 1, 1)} for c in ids])
    load_events(store, [{"customer_id": c, "ts": dt.datetime(2025, 1, 1 + i % 20) + dt.timedelta(days=30 * k),
                         "amount": 5.0 + i + k, "quantity": 1 + k % 3}
                        for i, c in enumerate(ids[:30]) for k in range(3)])
    return eda.load_dataset(store)


def test_fields_without_values_are_dropped_not_imputed(tmp_path):
    ds = _dataset(tmp_path)
    prof = profiling.profile(ds).set_index("field")
    for field in ("age", "income", "support_tickets", "customer_satisfaction", "region", "channel"):
        assert prof.loc[field, "imputation"] == "drop: no values", field
        assert prof.loc[field, "scaling"] == "none (no values)"
    assert prof.loc["total_spent", "imputation"] != "drop: no values"
    found = findings.findings(ds, prof.reset_index())
    assert ("no values at all in 6 fields (age, income, support_tickets, customer_satisfaction, region, channel): "
            "drop them (training drops them itself); ingest the columns to use them") in found
    assert not any("impute median" in f for f in found)


def test_empty_figures_are_skipped(tmp_path):
    ds = _dataset(tmp_path)
    c = ds.customers
    assert not figs.has_values(c, "income", "customer_satisfaction")
    assert figs.has_values(c, "tenure_days")
    fig = figs.distributions(c)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split(" (")[0] for t in titles] == ["orders per customer", "total spent", "tenure"]
    box = figs.outliers(c, ds.events, profiling.profile(ds))
    assert [ax.get_title().split(":")[0] for ax in box.axes] == ["total_spent", "event amount"]
    empty = pd.DataFrame({"region": ["n", "s"], "mean_satisfaction": [None, None]})
    assert not figs.panel_has_values(empty, "mean_satisfaction")
