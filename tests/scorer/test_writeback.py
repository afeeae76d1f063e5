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


def test_reasons_and_recommendations_are_written_plain_whatever_the_models_return():
    def score(reasons, recommendations):
        result = CustomerScore("C1", "v1", {"churn_probability": np.float32(0.5), "reasons": reasons,
                                            "recommendations": recommendations}, {}, {})
        return customer_score(ScoredRow("C1", result, {"churn": "c1"}, "h", None, None), dt.datetime(2025, 1, 1))

    plain = score([{"feature": "age", "contribution": 0.2, "sentence": "s"}], [{"product_id": "p1", "score": 1.0}])
    assert plain["reasons"] == [{"feature": "age", "contribution": 0.2, "sentence": "s"}]
    assert plain["recommendations"] == [{"product_id": "p1", "score": 1.0}]
    assert plain["churn_probability"] == 0.5 and type(plain["churn_probability"]) is float

    mixed = score([{"feature": "age", "contribution": np.float64(0.2), "value": float("nan")}],
                  ({"product_id": "p1", "score": np.float32(1.0)},))
    assert mixed["reasons"] == [{"feature": "age", "contribution": 0.2, "value": None}]
    assert type(mixed["reasons"][0]["contribution"]) is float
    assert mixed["recommendations"] == [{"product_id": "p1", "score": 1.0}]
