"""Metrics, thresholds, reliability curve, CV and the candidate comparison helpers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, mean_absolute_error, roc_auc_score

from custscore.errors import ConfigError
from custscore.models.evaluate import (
    best,
    choose_threshold,
    classification_metrics,
    compare_balance,
    cross_validate_model,
    evaluate_candidates,
    higher_is_better,
    regression_metrics,
    reliability_curve,
)
from custscore.models.selection import compare_selection
from custscore.models.zoo import make_candidates
from tests.models.test_zoo import CAT, NUM, make_frame


def test_choose_threshold_maximises_f1_on_hand_example():
    y = [0, 0, 1, 1]
    proba = [0.1, 0.4, 0.35, 0.8]
    threshold, statement = choose_threshold(y, proba)
    # At 0.35 three rows are positive: precision 2/3, recall 1, F1 0.8 (the best cut).
    assert threshold == pytest.approx(0.35)
    assert "maximises F1 (0.80)" in statement


def test_recall_at_precision_respects_the_floor_and_says_when_it_cannot():
    y = np.array([0, 1, 0, 1, 1, 0, 1, 1])
    proba = np.array([0.9, 0.85, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    threshold, statement = choose_threshold(y, proba, rule="recall_at_precision", min_precision=0.6)
    pred = proba >= threshold
    assert (y[pred] == 1).mean() >= 0.6
    assert threshold == pytest.approx(0.2)  # 5 of 8 positive predictions are right: 0.625 >= 0.6, recall 1
    assert "precision >= 0.60" in statement
    _, fallback = choose_threshold([1, 0], [0.2, 0.9], rule="recall_at_precision", min_precision=0.99)
    assert "no threshold reaches precision >= 0.99" in fallback
    with pytest.raises(ConfigError, match="min_precision"):
        choose_threshold(y, proba, rule="recall_at_precision")


def test_metrics_match_sklearn():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.2, 0.7, 0.4, 0.6, 0.9])
    m = classification_metrics(y, p, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p >= 0.5))
    assert m["accuracy"] == pytest.approx(0.6)
    r = regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    assert r["mae"] == pytest.approx(mean_absolute_error([1, 2, 4], [1, 3, 2]))
    assert r["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert higher_is_better("roc_auc") and not higher_is_better("mae")


def test_reliability_curve_counts_sum_to_n():
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = rng.random(500) < p
    curve = reliability_curve(y, p, bins=10)
    assert list(curve.columns) == ["bin", "mean_predicted", "observed_rate", "count"]
    assert curve["count"].sum() == 500
    assert (curve["observed_rate"] - curve["mean_predicted"]).abs().max() < 0.2


def test_cross_validation_and_leaderboard_order():
    X, y = make_frame("classification")
    cands = make_candidates("classification", NUM, CAT, families=["linear", "tree"])
    mean, std = cross_validate_model(cands["linear"], X, y, "classification", cv=3)
    assert 0.5 < mean <= 1 and std >= 0
    seen = []
    results = evaluate_candidates(cands, X.iloc[:300], y[:300], X.iloc[300:], y[300:], "classification", cv=3,
                                  on_progress=lambda name, i, n: seen.append((name, i, n)))
    assert seen == [("linear", 0, 2), ("tree", 1, 2)]
    aucs = [r.val_metrics["roc_auc"] for r in results]
    assert aucs == sorted(aucs, reverse=True) and best(results, "classification") is results[0]
    assert all(r.threshold is not None and "F1" in r.notes and r.fit_seconds > 0 for r in results)


def test_regression_leaderboard_sorts_by_lowest_mae():
    X, y = make_frame("regression")
    cands = make_candidates("regression", NUM, CAT, families=["linear", "tree"])
    results = evaluate_candidates(cands, X.iloc[:300], y[:300], X.iloc[300:], y[300:], "regression", cv=3)
    maes = [r.val_metrics["mae"] for r in results]
    assert maes == sorted(maes) and results[0].threshold is None


def test_compare_balance_reports_both_numbers():
    X, y = make_frame("classification")
    out = compare_balance(NUM, CAT, X.iloc[:300], y[:300], X.iloc[300:], y[300:], families=("linear",))
    assert out["choice"] in ("weights", "smote") and out["metric"] == "pr_auc"
    assert f"{out[out['choice']]:.3f}" in out["summary"] and out["summary"].startswith("kept ")


def test_compare_selection_keeps_selection_only_if_it_validates_better():
    X, y = make_frame("regression")
    out = compare_selection(NUM, CAT, X.iloc[:300], y[:300], X.iloc[300:], y[300:], "regression", k=5)
    assert set(out["scores"]) == {"none", "kbest", "rfe"} and out["n_features"] == 12  # 6 numeric + 4 region + 2 channel columns
    if out["kept"]:
        assert out["scores"][out["choice"]] < out["scores"]["none"] and out["selector"] is not None
    else:
        assert out["choice"] == "none" and out["selector"] is None
