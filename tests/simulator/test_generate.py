"""Tests of the vectorised customer/event simulator (fast: small populations, fixed seeds)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict

import numpy as np
import pytest

from custscore.simulator.generate import SimulatedBatch, SimulationConfig, simulate, simulate_stream_tick
from custscore.simulator.personas import CATEGORIES, CHANNELS, PERSONAS, REGIONS

END = dt.datetime(2024, 6, 1)
CUSTOMER_KEYS = {
    "_id", "customer_id", "age", "income", "region", "channel", "signup_date",
    "support_tickets", "customer_satisfaction", "_truth",
}
TRUTH_KEYS = {"persona", "satisfaction", "churn_hazard", "purchase_rate", "churned_at", "churn_probability"}
PRODUCT_TRUTH_KEYS = {"taste", "category_mix", "catalogue_seed"}  # simulator/products.py (products=True, the default)
EVENT_KEYS = {"customer_id", "ts", "amount", "category", "product_id", "quantity", "channel"}


def run(batch_size: int = 5000, **kw) -> tuple[list[dict], list[dict], list[SimulatedBatch]]:
    kw.setdefault("end", END)
    batches = list(simulate(SimulationConfig(**kw), batch_size))
    customers = [c for b in batches for c in b.customers]
    events = [e for b in batches for e in b.events]
    return customers, events, batches


@pytest.fixture(scope="module")
def sim():
    customers, events, _ = run(n_customers=4000, seed=11)
    by_customer = defaultdict(list)
    for e in events:
        by_customer[e["customer_id"]].append(e)
    return customers, events, by_customer


def test_same_seed_identical_and_different_seed_differs():
    a = run(n_customers=1500, seed=5)[:2]
    assert a == run(n_customers=1500, seed=5)[:2]
    c_other, e_other, _ = run(n_customers=1500, seed=6)
    assert a[0] != c_other
    assert a[1] != e_other


@pytest.mark.parametrize("batch_size", [1, 7, 999, 1000, 2500, 10_000])
def test_output_independent_of_batch_size(batch_size):
    reference = run(n_customers=2300, seed=3, batch_size=1000)
    customers, events, batches = run(n_customers=2300, seed=3, batch_size=batch_size)
    assert (customers, events) == reference[:2]
    assert all(len(b.customers) <= batch_size for b in batches)
    for b in batches:  # each batch holds all events of its own customers only
        assert {e["customer_id"] for e in b.events} <= {c["_id"] for c in b.customers}


def test_ids_and_schema_are_exact_with_plain_python_types(sim):
    customers, events, _ = sim
    assert [c["_id"] for c in customers[:3]] == ["C0000001", "C0000002", "C0000003"]
    for c in customers:
        assert set(c) == CUSTOMER_KEYS and set(c["_truth"]) == TRUTH_KEYS | PRODUCT_TRUTH_KEYS
        assert c["_id"] == c["customer_id"]
        assert type(c["age"]) in (int, type(None)) and type(c["income"]) in (float, type(None))
        assert type(c["region"]) in (str, type(None)) and type(c["channel"]) in (str, type(None))
        assert type(c["support_tickets"]) in (int, type(None))
        assert type(c["customer_satisfaction"]) in (int, type(None))
        assert type(c["signup_date"]) is dt.datetime and c["signup_date"].tzinfo is None
        t = c["_truth"]
        assert type(t["persona"]) is str
        assert all(type(t[k]) is float for k in ("satisfaction", "churn_hazard", "purchase_rate", "churn_probability"))
        assert t["churned_at"] is None or type(t["churned_at"]) is dt.datetime
    for e in events[:20000]:
        assert set(e) - {"rating"} == EVENT_KEYS | {"store_id", "promo"}  # a rating only on rated purchases
        assert "rating" not in e or (type(e["rating"]) is float and 1.0 <= e["rating"] <= 5.0)
        assert type(e["customer_id"]) is str and type(e["ts"]) is dt.datetime and type(e["amount"]) is float
        assert type(e["category"]) is str and type(e["product_id"]) is str
        assert type(e["quantity"]) is int and type(e["channel"]) is str


def test_value_ranges(sim):
    customers, events, _ = sim
    personas = {p.name for p in PERSONAS}
    for c in customers:
        assert c["age"] is None or 18 <= c["age"] <= 110
        assert c["income"] is None or (c["income"] >= 0 and round(c["income"], 2) == c["income"])
        assert c["region"] is None or c["region"] in REGIONS
        assert c["channel"] is None or c["channel"] in CHANNELS
        assert c["support_tickets"] is None or c["support_tickets"] >= 0
        assert c["customer_satisfaction"] is None or 1 <= c["customer_satisfaction"] <= 10
        assert END - dt.timedelta(days=3 * 365) <= c["signup_date"] <= END
        t = c["_truth"]
        assert t["persona"] in personas and 1.0 <= t["satisfaction"] <= 10.0
        assert 0 < t["churn_hazard"] < 1 and t["purchase_rate"] > 0
        assert 0.0 <= t["churn_probability"] <= 1.0
        assert (t["churn_probability"] == 1.0) == (t["churned_at"] is not None)
        if t["churned_at"] is not None:
            assert c["signup_date"] < t["churned_at"] <= END
    pattern = re.compile(r"^([a-z]+)-(\d{4})$")
    for e in events:
        assert e["amount"] > 0 and round(e["amount"], 2) == e["amount"]
        assert e["quantity"] >= 1 and e["category"] in CATEGORIES and e["channel"] in CHANNELS
        m = pattern.match(e["product_id"])
        assert m and m.group(1) == e["category"]
        assert e["ts"].microsecond == 0


def test_events_inside_active_span_sorted_and_stop_at_churn(sim):
    customers, _, by_customer = sim
    window_start = END - dt.timedelta(days=365)
    n_churned_with_events = 0
    for c in customers:
        evs = by_customer.get(c["_id"], [])
        ts = [e["ts"] for e in evs]
        assert ts == sorted(ts)
        churned_at = c["_truth"]["churned_at"]
        lo, hi = max(c["signup_date"], window_start), min(churned_at or END, END)
        assert all(lo <= t <= hi for t in ts)
        n_churned_with_events += bool(evs and churned_at)
    assert n_churned_with_events > 50


def test_popular_products_dominate(sim):
    _, events, _ = sim
    ranks = np.array([int(e["product_id"].rsplit("-", 1)[1]) for e in events])
    assert np.mean(ranks <= 10) > 0.3 and ranks.max() > 100


@pytest.mark.parametrize("rate", [0.0, 0.1])
def test_missing_rate_roughly_respected(rate):
    customers, _, _ = run(n_customers=3000, seed=2, missing_rate=rate)
    for field in ("age", "income", "region", "channel", "support_tickets", "customer_satisfaction"):
        frac = np.mean([c[field] is None for c in customers])
        assert abs(frac - rate) < 0.025, (field, frac)
    assert all(c["signup_date"] is not None and c["_truth"]["persona"] for c in customers)


def test_outliers_stay_plausible():
    customers, events, _ = run(n_customers=2000, seed=4, outlier_rate=0.2, missing_rate=0.0)
    ages = np.array([c["age"] for c in customers])
    assert 0.1 < np.mean(ages > 90) < 0.3 and ages.max() <= 110
    amounts = np.array([e["amount"] for e in events])
    assert amounts.min() > 0 and amounts.max() > 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_customers", -5), ("n_customers", 0), ("n_customers", 2.5), ("seed", -1), ("days", 0),
     ("horizon_days", 0), ("missing_rate", 1.5), ("outlier_rate", -0.1), ("id_prefix", ""),
     ("end", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)), ("end", "2024-01-01")],
)
def test_config_validation_is_one_line_naming_the_field(field, value):
    kw = {"n_customers": 10, field: value}
    with pytest.raises(ValueError) as info:
        SimulationConfig(**kw).validate()
    msg = str(info.value)
    assert msg.startswith(field) and "\n" not in msg and "got" in msg
    with pytest.raises(ValueError):
        simulate(SimulationConfig(**kw))  # eager: raised before iterating


def test_bad_batch_size_rejected():
    with pytest.raises(ValueError, match="^batch_size"):
        simulate(SimulationConfig(n_customers=10), batch_size=0)


def test_default_end_is_today_midnight_utc():
    customers, events, _ = run(n_customers=50, seed=1, end=None)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    assert max(c["signup_date"] for c in customers) <= today + dt.timedelta(days=1)
    assert all(e["ts"] <= today + dt.timedelta(days=1) for e in events)


def test_churn_fraction_sane(sim):
    customers, _, _ = sim
    churned = np.mean([c["_truth"]["churned_at"] is not None for c in customers])
    hazard = np.array([c["_truth"]["churn_hazard"] for c in customers])
    annual = np.mean(1 - np.exp(-12 * hazard))
    assert 0.05 < churned < 0.35
    assert 0.10 < annual < 0.35
    active = [c for c in customers if c["_truth"]["churned_at"] is None]
    expected = 1 - math.exp(-active[0]["_truth"]["churn_hazard"] * 90 / 30)
    assert active[0]["_truth"]["churn_probability"] == pytest.approx(expected)


def test_personas_are_behaviourally_distinct(sim):
    customers, _, by_customer = sim
    stats = defaultdict(lambda: defaultdict(list))
    for c in customers:
        evs = by_customer.get(c["_id"], [])
        s = stats[c["_truth"]["persona"]]
        s["n"].append(len(evs))
        s["spend"].append(sum(e["amount"] for e in evs))
        s["qty"].extend(e["quantity"] for e in evs)
        s["sat"].append(c["_truth"]["satisfaction"])
        s["tenure"].append((END - c["signup_date"]).days)
    mean = {p: {k: float(np.mean(v)) for k, v in s.items()} for p, s in stats.items()}
    assert set(mean) == {p.name for p in PERSONAS}
    assert mean["loyal_high_value"]["n"] > 1.5 * mean["bargain_hunter"]["n"] > 3 * mean["occasional"]["n"]
    assert mean["loyal_high_value"]["spend"] > 5 * mean["bargain_hunter"]["spend"]
    assert mean["bargain_hunter"]["qty"] > 1.5 * max(m["qty"] for p, m in mean.items() if p != "bargain_hunter")
    assert min(mean, key=lambda p: mean[p]["sat"]) == "at_risk"
    assert min(mean, key=lambda p: mean[p]["tenure"]) == "new_explorer"


def test_observables_are_predictive_of_satisfaction(sim):
    customers, _, _ = sim
    rows = [c for c in customers if c["customer_satisfaction"] is not None and c["support_tickets"] is not None]
    true = np.array([c["_truth"]["satisfaction"] for c in rows])
    observed = np.array([c["customer_satisfaction"] for c in rows])
    tickets = np.array([c["support_tickets"] for c in rows])
    assert np.corrcoef(true, observed)[0, 1] > 0.8
    assert np.corrcoef(tickets, observed)[0, 1] < -0.2


def test_stream_tick_new_customers_and_events():
    rng = np.random.default_rng(0)
    now = dt.datetime(2024, 6, 1, 12, 0, 0)
    existing = [f"C{i:07d}" for i in range(1, 51)]
    batch = simulate_stream_tick(rng, now, 20, existing, 200, id_offset=100)
    assert [c["_id"] for c in batch.customers] == [f"S{i:07d}" for i in range(101, 121)]
    for c in batch.customers:
        assert set(c) == CUSTOMER_KEYS and c["signup_date"] == now
        assert c["support_tickets"] in (0, None) and c["_truth"]["churned_at"] is None
        assert 0 < c["_truth"]["churn_probability"] < 1
    assert len(batch.events) == 200
    assert [e["customer_id"] for e in batch.events] == sorted(e["customer_id"] for e in batch.events)
    for e in batch.events:
        assert set(e) == EVENT_KEYS and e["customer_id"] in existing
        assert now - dt.timedelta(seconds=1) <= e["ts"] <= now and e["ts"].microsecond == 0
        assert e["amount"] > 0 and type(e["quantity"]) is int and e["category"] in CATEGORIES
    assert simulate_stream_tick(rng, now, 0, [], 0, 0) == SimulatedBatch([], [])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"n_new": -1}, "n_new"), ({"n_events": -2}, "n_events"), ({"id_offset": -1}, "id_offset"),
     ({"existing_ids": []}, "existing_ids"), ({"now": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, "now")],
)
def test_stream_tick_validation(kwargs, field):
    args = {"rng": np.random.default_rng(0), "now": dt.datetime(2024, 1, 1), "n_new": 1,
            "existing_ids": ["C0000001"], "n_events": 3, "id_offset": 0, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}"):
        simulate_stream_tick(**args)


def test_products_part_changes_no_customer_level_behaviour():
    """simulator/products.py uses its own random streams: profiles, times, categories and amounts are identical."""
    on = run(n_customers=1200, seed=4)
    off = run(n_customers=1200, seed=4, products=False)
    strip = ("taste", "category_mix", "catalogue_seed")
    assert [{**c, "_truth": {k: v for k, v in c["_truth"].items() if k not in strip}} for c in on[0]] == off[0]
    keep = ("customer_id", "ts", "amount", "category", "quantity", "channel")
    assert [tuple(e[k] for k in keep) for e in on[1]] == [tuple(e[k] for k in keep) for e in off[1]]
    assert any("rating" in e for e in on[1]) and not any("rating" in e for e in off[1])
    assert [e["product_id"] for e in on[1]] != [e["product_id"] for e in off[1]]
