"""Segment names come from the RFM grid relative to the population and never contradict the profile they name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custscore.models.segment import SegmentModel
from custscore.models.segment_names import (
    NAME_PROFILES,
    NEVER_BOUGHT,
    RFM_NAMES,
    agrees,
    name_segments,
    rfm_name,
    segment_percentiles,
)
from tests.models.test_segment import _simulated_frame

AXES = ["recency_days", "orders_365d", "spend_per_month", "tenure_days"]


def _group(n, recency, orders, spend, tenure, rng):
    """n customers around the given medians (a little noise, so percentiles have ties to break)."""
    jitter = lambda v: np.clip(v * rng.uniform(0.9, 1.1, n), 0, None)  # noqa: E731
    return pd.DataFrame({"recency_days": jitter(recency), "orders_365d": np.round(jitter(orders)),
                         "spend_per_month": jitter(spend), "tenure_days": jitter(tenure)})


@pytest.fixture(scope="module")
def planted():
    """Six planted groups, one per classic profile, including the one issue 16 found misnamed."""
    rng = np.random.default_rng(3)
    groups = [  # recency days, orders a year, spend a month, tenure days
        (5, 40, 400, 700),     # champions
        (9, 1, 20, 40),        # new: one recent order, just signed up
        (300, 30, 350, 900),   # can't lose: bought a lot, long ago
        (438, 0.24, 2, 800),   # lost: 0.02 orders a month, last bought 438 days ago
        (60, 1, 15, 600),      # hibernating: lapsed, below the median on orders and spend
        (7, 1, 25, 650),       # promising: recent, low frequency, not new
    ]
    frames = [_group(100, *g, rng) for g in groups]
    X = pd.concat(frames, ignore_index=True)
    labels = np.repeat(np.arange(len(groups)), 100)
    return X, labels


def test_planted_profiles_get_their_industry_names(planted):
    X, labels = planted
    names = name_segments(X, labels, 6)
    assert names[0] == "champions"
    assert names[1] == "new"
    assert names[2] == "can't lose"
    assert names[3] == "lost"
    assert names[4] == "hibernating"
    assert names[5] == "promising"


def test_the_misnamed_segment_of_issue_16_is_not_called_regular_or_loyal(planted):
    X, labels = planted
    name = name_segments(X, labels, 6)[3]
    assert name not in {"champions", "loyal", "promising", "new"}
    pct = segment_percentiles(X, labels).loc[3]
    assert pct["recency"] < 0.25 and pct["frequency"] < 0.5


@pytest.mark.parametrize("p", [
    {"recency": r, "frequency": f, "monetary": m, "tenure": t, "never_bought": 0.0}
    for r in (0.1, 0.3, 0.55, 0.8) for f in (0.2, 0.5, 0.6, 0.8) for m in (0.2, 0.6, 0.9) for t in (0.2, 0.7)])
def test_every_grid_name_agrees_with_the_percentiles_it_came_from(p):
    name = rfm_name(p)
    assert name in RFM_NAMES
    assert agrees(name, p), (name, p)


def test_names_that_contradict_a_profile_are_caught():
    assert not agrees("champions", {"recency": 0.3, "frequency": 0.9, "monetary": 0.9})
    assert not agrees("lost", {"recency": 0.1, "frequency": 0.8, "monetary": 0.1})
    assert agrees("at risk (grocery)", {"recency": 0.3, "frequency": 0.4, "monetary": 0.7})
    assert agrees("at risk 2", {"recency": 0.3, "frequency": 0.7, "monetary": 0.2})
    assert set(RFM_NAMES) == {"champions", "loyal", "new", "promising", "at risk", "can't lose",
                              "hibernating", "lost"}


def test_a_segment_of_customers_who_never_bought_is_named_so():
    X = pd.DataFrame({"recency_days": [np.nan] * 50 + list(np.linspace(1, 100, 50)),
                      "orders_365d": [0.0] * 50 + [5.0] * 50, "spend_per_month": [0.0] * 50 + [40.0] * 50,
                      "tenure_days": [30.0] * 100})
    names = name_segments(X, np.repeat([0, 1], 50), 2)
    assert names[0] == NEVER_BOUGHT and agrees(names[0], segment_percentiles(X, np.repeat([0, 1], 50)).loc[0])


def test_repeated_names_are_told_apart():
    X = pd.DataFrame({"recency_days": [5.0] * 40 + [6.0] * 40 + [300.0] * 80,
                      "orders_365d": [40.0] * 40 + [38.0] * 40 + [1.0] * 80,
                      "spend_per_month": [300.0] * 40 + [200.0] * 40 + [5.0] * 80,
                      "tenure_days": [500.0] * 160})
    labels = np.repeat([0, 1, 2], [40, 40, 80])
    names = name_segments(X, labels, 3)
    assert names == {0: "champions 1", 1: "champions 2", 2: "hibernating"}
    hint = pd.Series(["books"] * 40 + ["toys"] * 120)
    assert name_segments(X, labels, 3, hint=hint) == {0: "champions (books)", 1: "champions (toys)", 2: "hibernating"}


@pytest.fixture(scope="module")
def fitted():
    X, _ = _simulated_frame(1500, seed=11)
    return X, SegmentModel(seed=0, k_range=(3, 6)).fit(X)


def test_fitted_segment_names_agree_with_their_profiles_in_real_units(fitted):
    X, model = fitted
    pop = X[AXES].median()
    med = X[AXES].groupby(model.labels_).median()
    pct = segment_percentiles(X, model.labels_)
    for s, name in model.names_.items():
        base = name.split(" (")[0]
        assert base in NAME_PROFILES, name
        assert agrees(name, pct.loc[s].to_dict()), (name, pct.loc[s].to_dict())
        row = med.loc[s]
        if base in {"champions", "loyal", "new", "promising"}:
            assert row["recency_days"] <= pop["recency_days"], (name, row.to_dict())
        else:
            assert row["recency_days"] >= pop["recency_days"], (name, row.to_dict())
        if base == "champions":
            assert row["orders_365d"] >= pop["orders_365d"] and row["spend_per_month"] > pop["spend_per_month"]
        if base in {"lost", "hibernating"}:
            assert row["orders_365d"] <= pop["orders_365d"] and row["spend_per_month"] <= pop["spend_per_month"]
    assert len(set(model.names_.values())) == model.k_
    assert list(model.profiles_["name"]) == [model.names_[s] for s in range(model.k_)]
