"""Prediction records hold plain values whatever the models return (NumPy scalars, NaN, non-text keys)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from custscore.scorer.writeback import ScoredRow, customer_score, prediction_record
from tests.scorer.fakes import CustomerScore


def record(shap: dict, features: dict) -> dict:
    result = CustomerScore("C1", "v1", {"churn_probability": 0.5, "reasons": []}, shap, features)
    row = ScoredRow("C1", result, {"churn": "c1"}, "h", None, dt.datetime(2025, 1, 1))
    return prediction_record(row, customer_score(row, dt.datetime(2025, 1, 1, 0, 0, 1)))


def test_plain_vectors_are_kept_and_numpy_or_nan_values_become_plain():
    plain = record({"churn": {"age": 0.25, "tickets": -1.0}}, {"age": 41.0, "region": "north", "orders": 3})
    assert plain["shap"] == {"churn": {"age": 0.25, "tickets": -1.0}}
    assert plain["features"] == {"age": 41.0, "region": "north", "orders": 3}

    mixed = record({"churn": {"age": np.float64(0.25), "tickets": float("nan")}}, {"age": np.nan, 7: np.int64(2)})
    assert mixed["shap"] == {"churn": {"age": 0.25, "tickets": None}}
    assert type(mixed["shap"]["churn"]["age"]) is float
    assert mixed["features"] == {"age": None, "7": 2} and type(mixed["features"]["7"]) is int
