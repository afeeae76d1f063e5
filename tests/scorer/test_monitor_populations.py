"""monitor compares like with like: buyers against the buyers' reference, new customers against theirs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from custscore.config import Settings
from custscore.errors import InputError
from custscore.scorer.monitor import drift_report, exit_code, monitor, population_of, reference_profile
from custscore.store import open_store

START = dt.datetime(2026, 3, 1)


def buyers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"orders_total": rng.poisson(6, n) + 1.0, "recency_days": rng.gamma(2, 15, n),
                         "tenure_days": rng.uniform(30, 900, n)}, index=[f"B{seed}-{i}" for i in range(n)])


def newcomers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"orders_total": np.zeros(n), "recency_days": np.full(n, np.nan),
                         "tenure_days": rng.uniform(0, 60, n)}, index=[f"N{seed}-{i}" for i in range(n)])


def churn_p(frame: pd.DataFrame) -> np.ndarray:
    return (1 - np.exp(-frame["recency_days"].fillna(0) / 60)).to_numpy()


@pytest.fixture
def store():
    st = open_store(Settings.build(mongo_uri="memory:", environ={}))
    yield st
    st.close()


def write(store, frame: pd.DataFrame, start: dt.datetime = START) -> None:
    p = churn_p(frame)
    store["predictions"].insert_many([
        {"_id": f"{cid}|v1|1", "customer_id": cid, "scored_at": start + dt.timedelta(seconds=n),
         "churn_probability": float(p[n]),
         "features": {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}}
        for n, (cid, row) in enumerate(frame.to_dict(orient="index").items())])


@pytest.fixture(scope="module")
def references():
    train_buyers, train_new = buyers(3000, 0), newcomers(600, 1)
    return {"churn": reference_profile(train_buyers, {"churn_probability": churn_p(train_buyers)}),
            "first_purchase": reference_profile(train_new)}


def test_a_reference_knows_its_population(references):
    assert references["churn"]["population"] == "buyers"
    assert references["first_purchase"]["population"] == "new"
    assert population_of(pd.concat([buyers(10, 2), newcomers(10, 3)])) == "all"
    assert population_of(pd.DataFrame({"age": [30.0]})) == "all"
    assert reference_profile(buyers(20, 4), population="all")["population"] == "all"
    with pytest.raises(InputError, match="population 'old' is not known; use one of buyers, new, all"):
        reference_profile(buyers(20, 4), population="old")


def test_new_signups_among_the_scored_do_not_alarm_the_buyers_reference(store, references):
    # what a fresh demo leaves: buyers scored alongside 10% new sign-ups who never bought
    write(store, pd.concat([buyers(1500, 10), newcomers(160, 11)]))
    result = monitor(store, references)
    assert result.worst_band == "stable", result.frame.head()
    assert exit_code(result) == 0
    churn_rows = result.frame[result.frame["task"] == "churn"]
    recency = churn_rows[churn_rows["name"] == "recency_days"].iloc[0]
    assert recency["now_share"] < 0.2 and recency["bucket"] != "missing"
    assert set(result.frame["task"]) == {"churn", "first_purchase"}


def test_before_the_split_the_same_scores_would_alarm(store, references):
    write(store, pd.concat([buyers(1500, 10), newcomers(160, 11)]))
    everyone = dict(references["churn"], population="all")
    frame = drift_report(store, everyone)
    assert frame.iloc[0]["name"] == "recency_days" and frame.iloc[0]["bucket"] == "missing"
    assert frame.iloc[0]["band"] == "shift"
    assert drift_report(store, references["churn"]).iloc[0]["band"] == "stable"


def test_a_population_too_small_to_compare_is_named_not_alarmed(store, references):
    write(store, pd.concat([buyers(800, 12), newcomers(20, 13)]))
    result = monitor(store, references)
    assert exit_code(result) == 0 and set(result.frame["task"]) == {"churn"}
    assert "first_purchase not compared: 20 recent new customers (no purchase yet) scored, fewer than 100" \
        in result.message


def test_real_drift_among_buyers_still_alarms(store, references):
    drifted = buyers(1500, 14)
    drifted["recency_days"] *= 4  # everyone went quiet
    write(store, drifted)
    result = monitor(store, references)
    assert result.worst_band == "shift" and exit_code(result) == 1


def test_small_samples_without_drift_are_not_called_moderate_or_shift(store):
    # 120 training rows against 140 scored from the same distribution: PSI is noisy at these sizes
    small = buyers(120, 20)
    reference = reference_profile(small)
    write(store, buyers(140, 21))
    frame = drift_report(store, reference, min_recent=100)
    assert (frame["band"] == "stable").all(), frame[["name", "psi", "noise_floor"]]
    recency = frame.set_index("name").loc["recency_days"]  # 10 quantile buckets + missing: chi-square(10), 99%
    assert recency["noise_floor"] == pytest.approx(23.209 * (1 / 120 + 1 / 140), rel=1e-3)
    assert (frame["psi"] > 0).all()
