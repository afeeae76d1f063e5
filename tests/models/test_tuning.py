"""Budgeted hyperparameter search."""

from __future__ import annotations

import time

import pytest
from sklearn.utils.validation import check_is_fitted

from custscore.models.tuning import tune
from custscore.models.zoo import make_candidates
from tests.models.test_zoo import CAT, NUM, make_frame


def test_tiny_budget_returns_fitted_defaults_quickly():
    X, y = make_frame("classification")
    pipe = make_candidates("classification", NUM, CAT, families=["forest"])["forest"]
    start = time.perf_counter()
    fitted, params, summary = tune("forest", pipe, X, y, "classification", budget_seconds=0.01)
    assert time.perf_counter() - start < 5
    check_is_fitted(fitted)
    assert params == {} and "kept defaults" in summary


def test_search_runs_within_budget_and_returns_fitted_pipeline():
    X, y = make_frame("regression")
    pipe = make_candidates("regression", NUM, CAT, families=["tree"])["tree"]
    start = time.perf_counter()
    fitted, params, summary = tune("tree", pipe, X, y, "regression", budget_seconds=3, cv=3)
    assert time.perf_counter() - start < 3 + 1.5
    assert fitted.predict(X.iloc[:5]).shape == (5,)
    assert "candidates" in summary
    assert all(k.startswith("model__") for k in params)


def test_ensembles_are_fitted_but_not_tuned():
    X, y = make_frame("classification")
    pipe = make_candidates("classification", NUM, CAT, families=["voting"])["voting"]
    fitted, params, summary = tune("voting", pipe, X, y, "classification", budget_seconds=1)
    assert params == {} and "not tuned" in summary
    assert fitted.predict_proba(X.iloc[:3]).shape == (3, 2)


@pytest.mark.slow
def test_mlp_uses_keras_tuner_within_budget():
    X, y = make_frame("classification")
    pipe = make_candidates("classification", NUM, CAT, families=["mlp"])["mlp"].set_params(model__epochs=5)
    start = time.perf_counter()
    fitted, params, summary = tune("mlp", pipe, X, y, "classification", budget_seconds=12)
    elapsed = time.perf_counter() - start
    assert fitted.predict_proba(X.iloc[:3]).shape == (3, 2)
    assert elapsed < 12 + 10
    if params:
        assert "KerasTuner" in summary and set(params) == {"model__hidden", "model__dropout", "model__learning_rate"}
