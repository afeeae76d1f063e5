"""Demand series: zero-filled periods, frequencies, outlier clipping, the simulated demand process."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from custscore.errors import InputError
from custscore.forecast.series import clip_outliers, from_frame, parse_by
from custscore.simulator.stores import ONLINE_STORE, DemandConfig, ShopNetwork, assign_stores, simulate_demand


def test_missing_days_are_zero_and_weeks_start_on_monday():
    frame = pd.DataFrame({"product_id": ["a", "a", "b"], "date": pd.to_datetime(["2026-06-01", "2026-06-04", "2026-06-02"]),
                          "quantity": [2, 3, 5], "promo": [False, True, False]})
    daily = from_frame(frame, ("product_id",), "D")
    assert daily.keys == ["a", "b"] and len(daily.periods) == 4
    assert daily.y.tolist() == [[2, 0, 0, 3], [0, 5, 0, 0]]
    assert daily.promo[0].tolist() == [False, False, False, True]
    assert daily.start.tolist() == [0, 1]
    weekly = from_frame(frame, ("product_id",), "W")
    assert weekly.periods[0] == pd.Timestamp("2026-06-01") and weekly.y[:, 0].tolist() == [5, 5]
    monthly = from_frame(frame.assign(date=frame["date"] + pd.Timedelta(days=40)), ("product_id",), "M")
    assert monthly.periods[0] == pd.Timestamp("2026-07-01")


def test_by_names_and_errors():
    assert parse_by("product,store") == ("product_id", "store_id")
    assert parse_by("total") == ()
    with pytest.raises(InputError, match="--by 'shelf' is not known"):
        parse_by("shelf")


def test_clipping_spares_promotions_and_clips_spikes():
    y = np.full((1, 60), 10.0)
    y[0, 20] = 500.0  # a data error
    y[0, 40] = 60.0  # a promotion
    promo = np.zeros_like(y, bool)
    promo[0, 40] = True
    out = clip_outliers(y, promo, np.array([0]))
    assert out[0, 20] < 20 and out[0, 40] == 60.0 and y[0, 20] == 500.0


def test_demand_process_is_reproducible_with_truth_and_intermittent_slow_movers():
    a = simulate_demand(DemandConfig(n_products=6, n_stores=2, days=365, seed=5))
    b = simulate_demand(DemandConfig(n_products=6, n_stores=2, days=365, seed=5))
    pd.testing.assert_frame_equal(a.sales, b.sales)
    assert set(a.stores["store_id"]) == {"ST001", "ST002", ONLINE_STORE}
    assert a.sales["promo"].mean() > 0.03
    zero_share = a.sales.groupby("product_id")["quantity"].apply(lambda q: (q == 0).mean())
    assert zero_share.max() > 0.3  # a slow mover
    promo_lift = a.sales.groupby("promo")["expected"].mean()
    assert promo_lift[True] > promo_lift[False]
    sat = a.sales[pd.to_datetime(a.sales["date"]).dt.day_of_week == 5]["expected"].mean()
    tue = a.sales[pd.to_datetime(a.sales["date"]).dt.day_of_week == 1]["expected"].mean()
    assert sat > 1.5 * tue
    assert a.products["category"].nunique() >= 5  # products spread over the categories


def test_store_channel_purchases_get_a_store_of_their_region():
    stores = simulate_demand(DemandConfig(n_products=1, n_stores=5, days=30)).stores
    events = [{"customer_id": "c1", "channel": "store"}, {"customer_id": "c2", "channel": "web"},
              {"customer_id": "c3", "channel": "store"}]
    assign_stores(events, stores, {"c1": "north", "c3": None}, seed=1)
    region = dict(zip(stores["store_id"], stores["region"], strict=True))
    assert region[events[0]["store_id"]] == "north"
    assert events[1]["store_id"] == ONLINE_STORE
    assert events[2]["store_id"] != ONLINE_STORE


def test_sales_events_carry_store_promo_and_truth():
    data = simulate_demand(DemandConfig(n_products=2, n_stores=1, days=20, end=dt.date(2026, 1, 31)))
    ev = data.events()
    assert ev and {"ts", "product_id", "store_id", "quantity", "promo", "_truth"} <= set(ev[0])
    assert all(e["quantity"] > 0 for e in ev)


def test_simulated_purchases_carry_their_customers_store_and_promotions():
    from custscore.simulator.generate import SimulationConfig, simulate

    config = SimulationConfig(n_customers=600, seed=4, days=120, end=dt.datetime(2026, 6, 1))
    batches = list(simulate(config, 250))
    region = {c["_id"]: c["region"] for b in batches for c in b.customers}
    events = [e for b in batches for e in b.events]
    stores = ShopNetwork(config.stores, 1, config.days, config.seed).stores
    store_region = dict(zip(stores["store_id"], stores["region"], strict=True))
    homes: dict[str, set] = {}
    for e in events:
        assert (e["store_id"] == ONLINE_STORE) == (e["channel"] != "store") and type(e["promo"]) is bool
        if e["channel"] == "store":
            homes.setdefault(e["customer_id"], set()).add(e["store_id"])
            assert region[e["customer_id"]] in (None, store_region[e["store_id"]])
    assert all(len(h) == 1 for h in homes.values())  # one home store per customer
    assert 0.03 < np.mean([e["promo"] for e in events]) < 0.2
    plain = [e for b in simulate(replace(config, stores=0), 250) for e in b.events]
    assert plain == [{k: v for k, v in e.items() if k not in ("store_id", "promo")} for e in events]


def test_load_panel_sums_units_keeps_promotions_and_drops_events_without_the_key(tmp_path):
    from custscore.config import Settings
    from custscore.forecast.series import load_panel
    from custscore.store import open_store
    from custscore.store.loading import load_customers, load_events

    with open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={})) as store:
        load_customers(store, [{"customer_id": "shop", "signup_date": "2026-01-01"}])
        rows = [("2026-06-01T09:00", "books", 2, None), ("2026-06-01T18:00", "books", None, True),
                ("2026-06-03T10:00", "books", 4, False), ("2026-06-02T10:00", None, 9, None),
                ("2026-06-02T11:00", "toys", 1, None)]
        report = load_events(store, [{"customer_id": "shop", "ts": ts, "amount": 1.0, "category": c, "quantity": q,
                                      "promo": p} for ts, c, q, p in rows])
        assert report.inserted == 5
        panel = load_panel(store, "category", "D")
        assert panel.keys == ["books", "toys"] and list(panel.periods.day) == [1, 2, 3]
        assert panel.y.tolist() == [[3, 0, 4], [0, 1, 0]]  # a missing quantity counts 1; the keyless event is out
        assert panel.promo.tolist() == [[True, False, False], [False, False, False]]
        cut = load_panel(store, "category", "D", as_of=dt.datetime(2026, 6, 2, 23))
        assert cut.y.tolist() == [[3, 0], [0, 1]]
