"""Named pipelines: each result equals the same statistic computed independently in pandas.

The pandas references below read the raw documents (``find()``), not the
pipelines, so a wrong stage shows up as a mismatch. The data has missing
values: the simulator's nulls (missing_rate=0.05) plus user-loaded customers
and events whose fields are absent altogether. bench/analytics_pipelines.py
reuses the references.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from custscore.analytics.pipelines import build_pipeline, get_pipeline, list_pipelines, run_pipeline
from custscore.config import Settings
from custscore.errors import InputError
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import UpdateOne, open_store
from custscore.store.loading import load_customers, load_events

END = dt.datetime(2026, 6, 30)
N_CUSTOMERS = 1500
AGE = ([0, 18, 25, 35, 45, 55, 65, math.inf], ["0-18", "18-25", "25-35", "35-45", "45-55", "55-65", "65+"])
INCOME = ([0, 25e3, 50e3, 75e3, 100e3, 150e3, math.inf], ["0-25k", "25k-50k", "50k-75k", "75k-100k", "100k-150k", "150k+"])
TENTHS = ([i / 10 for i in range(10)] + [math.nextafter(1.0, 2.0)], [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)])
NAMES = {"satisfaction_by_age", "satisfaction_by_income", "satisfaction_by_group", "churn_by_group", "rfm",
         "monthly_revenue", "cohort_retention", "top_categories", "top_products", "score_distribution"}


# -- pandas references ------------------------------------------------------------------------------------------
def frames(customers: list[dict], events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flat frames of the raw documents (absent and null fields both become NaN/None)."""
    rows = []
    for c in customers:
        truth, score = c.get("_truth"), c.get("score")
        rows.append({
            "customer_id": c["_id"], "age": c.get("age"), "income": c.get("income"), "region": c.get("region"),
            "channel": c.get("channel"), "sat": c.get("customer_satisfaction"), "signup": c.get("signup_date"),
            "has_truth": isinstance(truth, dict),
            "churned": isinstance(truth, dict) and truth.get("churned_at") is not None,
            "label_churn": c.get("label_churn"), "has_score": isinstance(score, dict),
            "risk": score.get("risk") if isinstance(score, dict) else None,
            "prob": score.get("churn_probability") if isinstance(score, dict) else None,
        })
    cdf = pd.DataFrame(rows).astype({"age": float, "income": float, "sat": float, "prob": float})
    edf = pd.DataFrame([{"customer_id": e["customer_id"], "ts": e["ts"], "amount": e["amount"],
                         "category": e.get("category"), "product_id": e.get("product_id")} for e in events])
    return cdf, edf


def _cut(values: pd.Series, bins) -> pd.Series:
    edges, labels = bins
    out = pd.cut(values, bins=edges, right=False, labels=labels).astype(object)
    return out.where(values.notna(), "missing")


def _satisfaction(df: pd.DataFrame, key: pd.Series, name: str) -> pd.DataFrame:
    g = df.groupby(key.rename(name), dropna=False)
    return pd.DataFrame({"customers": g.size(), "with_satisfaction": g["sat"].count(),
                         "mean_satisfaction": g["sat"].mean()}).reset_index()


def ref_satisfaction_by_age(cdf, edf, by=None, **_):
    return _satisfaction(cdf, _cut(cdf["age"], AGE), "age_bucket")


def ref_satisfaction_by_income(cdf, edf, by=None, **_):
    return _satisfaction(cdf, _cut(cdf["income"], INCOME), "income_bracket")


def ref_satisfaction_by_group(cdf, edf, by="region", **_):
    return _satisfaction(cdf, cdf[by], by)


def ref_churn_by_group(cdf, edf, by="region", **_):
    if cdf["has_truth"].any():
        df, flag = cdf[cdf["has_truth"]], "churned"
    else:
        df, flag = cdf[cdf["label_churn"].notna()], "label_churn"
    key = _cut(df["age"], AGE) if by == "age_bucket" else df[by]
    g = df[flag].astype(bool).groupby(key.rename(by), dropna=False)
    return pd.DataFrame({"customers": g.size(), "churned": g.sum(), "churn_rate": g.mean()}).reset_index()


def ref_rfm(cdf, edf, by=None, reference=None, **_):
    ref = edf["ts"].max() if reference is None else pd.Timestamp(reference)
    g = edf[edf["ts"] <= ref].groupby("customer_id")
    out = pd.DataFrame({"frequency": g.size(), "monetary": g["amount"].sum(), "mean_amount": g["amount"].mean(),
                        "first_purchase": g["ts"].min(), "last_purchase": g["ts"].max()})
    out["recency_days"] = (ref - out["last_purchase"]).dt.total_seconds() / 86400
    return out.reset_index()


def ref_monthly_revenue(cdf, edf, by=None, **_):
    g = edf.groupby(edf["ts"].dt.strftime("%Y-%m").rename("month"))
    return pd.DataFrame({"revenue": g["amount"].sum(), "orders": g.size(),
                         "active_customers": g["customer_id"].nunique()}).reset_index()


def ref_cohort_retention(cdf, edf, by=None, **_):
    signup = cdf.set_index("customer_id")["signup"]
    pairs = pd.DataFrame({"customer_id": edf["customer_id"],
                          "month": edf["ts"].dt.year * 12 + edf["ts"].dt.month - 1}).drop_duplicates()
    s = pd.to_datetime(pairs["customer_id"].map(signup))
    pairs = pairs.assign(cohort=s.dt.strftime("%Y-%m"), months_since=pairs["month"] - (s.dt.year * 12 + s.dt.month - 1))
    pairs = pairs[pairs["months_since"] >= 0]
    active = pairs.groupby(["cohort", "months_since"]).size().rename("active_customers").reset_index()
    sizes = pd.to_datetime(cdf["signup"]).dt.strftime("%Y-%m").value_counts()
    active["cohort_size"] = active["cohort"].map(sizes)
    active["retention"] = active["active_customers"] / active["cohort_size"]
    return active


def _top(edf, key, limit, carry=()):
    g = edf.groupby(key, dropna=False)
    out = pd.DataFrame({**{c: g[c].first() for c in carry}, "revenue": g["amount"].sum(), "orders": g.size(),
                        "customers": g["customer_id"].nunique()}).reset_index()
    out = out.sort_values(["revenue", key], ascending=[False, True]).reset_index(drop=True)
    return out.head(limit) if limit else out


def ref_top_categories(cdf, edf, by=None, limit=10, **_):
    return _top(edf, "category", limit)


def ref_top_products(cdf, edf, by=None, limit=10, **_):
    return _top(edf, "product_id", limit, carry=("category",))


def ref_score_distribution(cdf, edf, by=None, **_):
    df = cdf[cdf["has_score"]]
    parts = []
    for dimension, key in (("risk", df["risk"]), ("churn_probability", _cut(df["prob"], TENTHS))):
        g = df["prob"].groupby(key.rename("bucket"), dropna=False)
        part = pd.DataFrame({"customers": g.size(), "mean_churn_probability": g.mean()}).reset_index()
        parts.append(part.assign(dimension=dimension))
    return pd.concat(parts, ignore_index=True)


REFERENCE = {name: globals()[f"ref_{name}"] for name in NAMES}
KEYS = {"rfm": ["customer_id"], "monthly_revenue": ["month"], "cohort_retention": ["cohort", "months_since"],
        "top_categories": ["category"], "top_products": ["product_id"], "score_distribution": ["dimension", "bucket"],
        "satisfaction_by_age": ["age_bucket"], "satisfaction_by_income": ["income_bracket"]}


def assert_same(result: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Equal rows (matched on ``keys``, missing keys as one group) within float tolerance."""
    assert len(result) == len(expected), (result, expected)
    assert set(result.columns) == set(expected.columns)

    def keyed(df):
        df = df.copy()
        for k in keys:
            df[k] = df[k].astype(object).where(df[k].notna(), "<missing>").astype(str)
        return df.set_index(keys).sort_index()[sorted(set(df.columns) - set(keys))]

    pd.testing.assert_frame_equal(keyed(result), keyed(expected), check_dtype=False, rtol=1e-9)


# -- data -------------------------------------------------------------------------------------------------------
def _user_extras(store) -> None:
    """Customers and events with absent (not null) fields, as a user's CSV would give."""
    customers = [{"customer_id": f"U{i:03d}", "signup_date": dt.datetime(2026, 1 + i % 5, 3)} for i in range(30)]
    for i, c in enumerate(customers):
        if i % 3:
            c["age"] = 10 + 3 * i  # includes under-18 ages
        if i % 4 == 0:
            c["customer_satisfaction"] = 1 + i % 10
        if i % 5 == 0:
            c["region"] = "north"
    assert not load_customers(store, customers).problems
    events = [{"customer_id": f"U{i % 30:03d}", "ts": dt.datetime(2026, 2 + i % 4, 1 + i % 27, 10), "amount": 5.0 + i}
              for i in range(90)]
    for i, e in enumerate(events):
        if i % 2:
            e["category"] = "books"
            e["product_id"] = "books-9999"
    assert not load_events(store, events).problems


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A simulated embedded store file plus its raw documents (read once, shared read-only)."""
    path = tmp_path_factory.mktemp("seed") / "store.sqlite"
    store = open_store(Settings.build(mongo_uri=f"embedded:{path}", home=path.parent, environ={}))
    run_simulation(store, SimulationConfig(N_CUSTOMERS, seed=3, end=END, missing_rate=0.05))
    _user_extras(store)
    customers, events = list(store["customers"].find()), list(store["events"].find())
    store.close()
    return path, customers, events


@pytest.fixture
def sim_store(seeded, tmp_path):
    """A fresh copy of the seeded store for this test."""
    path = tmp_path / "store.sqlite"
    for f in seeded[0].parent.glob("store.sqlite*"):
        shutil.copy(f, tmp_path / f.name)
    store = open_store(Settings.build(mongo_uri=f"embedded:{path}", home=tmp_path, environ={}))
    yield store
    store.close()


def _add_scores(store, customers: list[dict]) -> None:
    rng = np.random.default_rng(5)
    ops = []
    for i, c in enumerate(customers[::3]):
        score = {"churn_probability": float(rng.uniform()), "risk": str(rng.choice(["low", "medium", "high"]))}
        if i % 17 == 0:
            score["churn_probability"] = [0.0, 1.0, 0.3][i % 3]  # edges of the tenths
        if i % 23 == 0:
            del score["risk"]
        if i % 29 == 0:
            score["churn_probability"] = None
        ops.append(UpdateOne({"_id": c["_id"]}, {"$set": {"score": score}}))
    store["customers"].bulk_write(ops)


# -- equality with pandas ---------------------------------------------------------------------------------------
CASES = [("satisfaction_by_age", None, {}), ("satisfaction_by_income", None, {}),
         ("satisfaction_by_group", "region", {}), ("satisfaction_by_group", "channel", {}),
         ("churn_by_group", "region", {}), ("churn_by_group", "channel", {}), ("churn_by_group", "age_bucket", {}),
         ("rfm", None, {}), ("rfm", None, {"reference": dt.datetime(2026, 3, 15)}), ("monthly_revenue", None, {}),
         ("cohort_retention", None, {}), ("top_categories", None, {"limit": 0}), ("top_categories", None, {"limit": 3}),
         ("top_products", None, {}), ("top_products", None, {"limit": 0})]


@pytest.mark.parametrize(("name", "by", "options"), CASES, ids=[f"{n}-{b}-{o}" for n, b, o in CASES])
def test_pipeline_matches_pandas(sim_store, seeded, name, by, options):
    _, customers, events = seeded
    result = run_pipeline(sim_store, name, by=by, **options)
    expected = REFERENCE[name](*frames(customers, events), by=by, **options)
    assert list(result.columns) == get_pipeline(name).column_names(by)
    assert len(result) > 0
    assert_same(result, expected, KEYS.get(name, [by]))


def test_data_really_has_missing_values(seeded):
    cdf, edf = frames(*seeded[1:])
    for column in ("age", "income", "region", "channel", "sat"):
        assert 0 < cdf[column].isna().sum() < len(cdf) / 2, column
    assert edf["category"].isna().sum() > 0
    assert any("customer_satisfaction" not in c for c in seeded[1])  # absent, not only null


def test_score_distribution_matches_pandas(sim_store, seeded):
    assert len(run_pipeline(sim_store, "score_distribution")) == 0  # nobody scored yet
    _add_scores(sim_store, seeded[1])
    customers = list(sim_store["customers"].find())
    result = run_pipeline(sim_store, "score_distribution")
    assert_same(result, ref_score_distribution(*frames(customers, [])), ["dimension", "bucket"])
    assert {"0.0-0.1", "0.9-1.0", "missing"} <= set(result["bucket"])


def test_result_orders(sim_store):
    ages = run_pipeline(sim_store, "satisfaction_by_age")["age_bucket"].tolist()
    assert ages == ["0-18", "18-25", "25-35", "35-45", "45-55", "55-65", "65+", "missing"]
    regions = run_pipeline(sim_store, "satisfaction_by_group", by="region")["region"]
    assert regions.iloc[:-1].is_monotonic_increasing and pd.isna(regions.iloc[-1])
    top = run_pipeline(sim_store, "top_products", limit=5)
    assert len(top) == 5 and top["revenue"].is_monotonic_decreasing
    months = run_pipeline(sim_store, "monthly_revenue")["month"]
    assert months.is_monotonic_increasing


def test_churn_uses_label_churn_without_truth(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    docs = [{"customer_id": f"L{i}", "signup_date": dt.datetime(2025, 1, 1), "region": ["north", "south", None][i % 3],
             "label_churn": [True, False, None, 1, 0][i % 5]} for i in range(40)]
    docs.append({"customer_id": "L99", "signup_date": dt.datetime(2025, 1, 1), "region": "north"})  # absent label
    load_customers(store, docs)
    result = run_pipeline(store, "churn_by_group", by="region")
    assert result.attrs["label_source"] == "label_churn"
    assert_same(result, ref_churn_by_group(*frames(list(store["customers"].find()), []), by="region"), ["region"])


def test_empty_store_gives_documented_empty_frames(tmp_path, caplog):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    with caplog.at_level(logging.WARNING, logger="custscore.analytics"):
        for info in list_pipelines():
            result = run_pipeline(store, info.name)
            assert len(result) == 0 and list(result.columns) == info.column_names(info.default_by), info.name
    assert "no customer has _truth (simulated data) or a label_churn field" in caplog.text


def test_every_backend_small(store):
    run_simulation(store, SimulationConfig(150, seed=9, end=END, missing_rate=0.1))
    cdf, edf = frames(list(store["customers"].find()), list(store["events"].find()))
    for name, by, options in CASES:
        assert_same(run_pipeline(store, name, by=by, **options), REFERENCE[name](cdf, edf, by=by, **options),
                    KEYS.get(name, [by]))


# -- registry and errors ----------------------------------------------------------------------------------------
def test_registry_describes_every_pipeline():
    infos = list_pipelines()
    assert {i.name for i in infos} == NAMES
    for info in infos:
        assert info.description and info.collection in ("customers", "events") and info.columns
        assert (info.default_by is None) == (not info.by)
    assert get_pipeline("churn_by_group").by == ("region", "channel", "age_bucket")


def test_build_pipeline_returns_stages():
    stages = build_pipeline("satisfaction_by_group", by="channel")
    assert stages == [{"$group": {"_id": "$channel", "customers": {"$sum": 1},
                                  "with_satisfaction": {"$sum": {"$cond": [
                                      {"$eq": [{"$ifNull": ["$customer_satisfaction", None]}, None]}, 0, 1]}},
                                  "mean_satisfaction": {"$avg": "$customer_satisfaction"}}}]
    assert build_pipeline("top_products", limit=3)[-1] == {"$limit": 3}
    assert build_pipeline("rfm", reference="2026-06-30")[0] == {"$match": {"ts": {"$lte": END}}}


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: run_pipeline(s, "nope"),
     "unknown pipeline 'nope'; choose one of: churn_by_group, cohort_retention, monthly_revenue, rfm, "
     "satisfaction_by_age, satisfaction_by_group, satisfaction_by_income, score_distribution, top_categories, "
     "top_products"),
    (lambda s: run_pipeline(s, "satisfaction_by_group", by="persona"),
     "pipeline 'satisfaction_by_group' cannot group by 'persona'; use one of: region, channel"),
    (lambda s: run_pipeline(s, "churn_by_group", by="income"),
     "pipeline 'churn_by_group' cannot group by 'income'; use one of: region, channel, age_bucket"),
    (lambda s: run_pipeline(s, "monthly_revenue", by="region"),
     "pipeline 'monthly_revenue' does not take a by field (got by='region'); leave it out"),
    (lambda s: run_pipeline(s, "top_products", top=5),
     "pipeline 'top_products' has no option 'top'; its options are: limit"),
    (lambda s: run_pipeline(s, "satisfaction_by_age", limit=5),
     "pipeline 'satisfaction_by_age' has no option 'limit'; its options are: none"),
    (lambda s: run_pipeline(s, "top_categories", limit=-1),
     "limit must be an integer >= 0 (0 = all), got -1; pass e.g. limit=10"),
    (lambda s: run_pipeline(s, "rfm", reference="last tuesday"),
     "reference 'last tuesday' is not a date; use ISO 8601 such as 2026-06-30"),
    (lambda s: build_pipeline("rfm"),
     "rfm needs reference=DATE to build its stages; run_pipeline defaults it to the latest event"),
])
def test_error_messages(tmp_path, call, message):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    store["events"].insert_one({"customer_id": "C1", "ts": END, "amount": 1.0})
    with pytest.raises(InputError) as info:
        call(store)
    assert str(info.value) == message
