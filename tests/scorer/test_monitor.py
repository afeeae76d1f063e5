"""Drift monitoring: PSI against the training reference, bands, stored summaries and the cron exit code."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from custscore.config import Settings
from custscore.errors import InputError
from custscore.scorer.monitor import drift_report, exit_code, monitor, psi, reference_profile
from custscore.store import open_store

START = dt.datetime(2026, 3, 1)


def training_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(45, 12, n),
            "support_tickets": rng.poisson(1.5, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).astype(object),
        },
        index=[f"T{i}" for i in range(n)],
    )


def churn(frame: pd.DataFrame) -> np.ndarray:
    return 1 / (1 + np.exp(-(frame["support_tickets"].fillna(0) - 2)))


@pytest.fixture
def store():
    st = open_store(Settings.build(mongo_uri="memory:", environ={}))
    yield st
    st.close()


@pytest.fixture(scope="module")
def reference():
    frame = training_frame(4000)
    profile = reference_profile(frame, {"churn_probability": churn(frame).to_numpy()})
    return json.loads(json.dumps(profile))  # as read back from a model manifest


def write_predictions(store, frame: pd.DataFrame, start: dt.datetime = START, input_version: int = 1) -> None:
    probs = churn(frame)
    records = [
        {
            "_id": f"{cid}|v1|{input_version}",
            "customer_id": cid,
            "model_versions": {"churn": "v1"},
            "scored_at": start + dt.timedelta(seconds=n),
            "churn_probability": float(probs.iloc[n]),
            "features": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()},
        }
        for n, (cid, row) in enumerate(frame.to_dict(orient="index").items())
    ]
    store["predictions"].insert_many(records)


def recent(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    frame = training_frame(n, seed)
    frame["age"] += shift * 12
    frame.index = [f"C{seed}-{i}" for i in range(n)]
    return frame


# ---------------------------------------------------------------- psi itself


def test_psi_matches_the_formula_by_hand():
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_counts_an_empty_bucket_as_epsilon():
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(-0.5 * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4))
    with pytest.raises(InputError, match="same buckets"):
        psi([0.5, 0.5], [1.0])


# ---------------------------------------------------------------- the reference profile


def test_reference_profile_bins_numbers_by_quantile_and_keeps_missing_apart():
    frame = training_frame(1000)
    frame.loc[frame.index[:250], "age"] = np.nan
    frame.loc[frame.index[:100], "region"] = None
    profile = reference_profile(frame, bins=10)
    age, region, tickets = (profile["features"][k] for k in ("age", "region", "support_tickets"))
    assert age["kind"] == "num" and len(age["edges"]) == 9
    assert age["missing"] == 0.25 and age["fractions"] == pytest.approx([0.075] * 10)
    assert region["kind"] == "cat" and region["missing"] == 0.1 and region["categories"][0] == "north"
    assert sum(region["fractions"]) + region["other"] + region["missing"] == pytest.approx(1)
    assert len(tickets["edges"]) < 9  # tied integer values collapse quantile edges
    assert sum(tickets["fractions"]) == pytest.approx(1)
    json.dumps(profile)


# ---------------------------------------------------------------- drift against stored predictions


def test_same_distribution_is_stable(store, reference):
    write_predictions(store, recent(1500, seed=1))
    report = drift_report(store, reference)
    assert list(report.columns) == ["kind", "name", "psi", "band", "bucket", "ref_share", "now_share", "noise_floor"]
    assert set(report["name"]) == {"age", "support_tickets", "region", "churn_probability"}
    assert (report["psi"] < 0.05).all() and set(report["band"]) == {"stable"}
    assert report.attrs["n_recent"] == 1500


def test_a_shifted_normal_is_a_shift(store, reference):
    write_predictions(store, recent(1500, seed=2, shift=1.0))
    report = drift_report(store, reference).set_index("name")
    assert report.loc["age", "psi"] > 0.25 and report.loc["age", "band"] == "shift"
    assert report.loc["region", "band"] == "stable"
    assert report.index[0] == "age"  # worst first


def test_moderate_band(store, reference):
    write_predictions(store, recent(3000, seed=3, shift=0.3))
    row = drift_report(store, reference).set_index("name").loc["age"]
    assert 0.1 <= row["psi"] < 0.25 and row["band"] == "moderate"


def test_a_new_category_lands_in_other(store, reference):
    frame = recent(1000, seed=4)
    frame.loc[frame.index[:300], "region"] = "west"
    write_predictions(store, frame)
    row = drift_report(store, reference).set_index("name").loc["region"]
    assert row["band"] == "shift" and row["bucket"] == "other"
    assert row["ref_share"] == 0.0 and row["now_share"] == pytest.approx(0.3)


def test_values_going_missing_is_drift(store, reference):
    frame = recent(1000, seed=5)
    frame.loc[frame.index[:200], "age"] = np.nan
    write_predictions(store, frame)
    row = drift_report(store, reference).set_index("name").loc["age"]
    assert row["bucket"] == "missing" and row["now_share"] == pytest.approx(0.2) and row["band"] == "shift"


def test_only_the_latest_record_of_each_customer_counts(store, reference):
    frame = recent(400, seed=6, shift=2.0)
    write_predictions(store, frame)
    write_predictions(store, recent(400, seed=6).set_axis(frame.index), START + dt.timedelta(days=1), input_version=2)
    report = drift_report(store, reference)
    assert report.attrs["n_recent"] == 400 and report.set_index("name").loc["age", "band"] == "stable"


def test_too_few_recent_predictions_give_a_message_not_a_number(store, reference):
    write_predictions(store, recent(60, seed=7))
    with pytest.raises(InputError) as err:
        drift_report(store, reference, since=START)
    assert str(err.value) == (
        "only 60 scored customers since 2026-03-01 00:00:00; drift needs at least 100 for a stable PSI - "
        "let the scorer run longer or widen --since"
    )
    result = monitor(store, {"churn": reference})
    assert result.worst_band == "insufficient" and result.n_recent == 60 and len(result.frame) == 0
    assert exit_code(result) == 0 and result.message.startswith("only 60 scored customers;")


# ---------------------------------------------------------------- monitor + exit code


def test_monitor_stores_a_summary_and_exits_non_zero_past_the_alert_band(store, reference):
    write_predictions(store, recent(800, seed=8, shift=1.0))
    other_task = {"features": reference["features"], "predictions": {}}
    result = monitor(store, {"churn": reference, "satisfaction": other_task})
    assert result.worst_band == "shift" and exit_code(result) == 1 and result.n_recent == 800
    assert list(result.frame.columns[:3]) == ["task", "kind", "name"]
    assert sorted(result.frame["name"]) == ["age", "churn_probability", "region", "support_tickets"]  # features once
    stored = store["monitoring"].find_one({"_id": result.summary_doc["_id"]})
    assert stored["worst_band"] == "shift" and stored["n_recent"] == 800
    assert stored["rows"][0]["name"] == "age" and stored["rows"][0]["band"] == "shift"
    assert result.message.startswith("worst: age PSI ")


def test_monitor_exits_zero_when_stable(store, reference):
    write_predictions(store, recent(800, seed=9))
    result = monitor(store, {"churn": reference})
    assert result.worst_band == "stable" and exit_code(result) == 0
    assert store["monitoring"].count() == 1
