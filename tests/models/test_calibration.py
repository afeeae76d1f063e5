"""Calibration: the map, the method choice on validation data, ECE, and a calibrated pipeline SHAP can still explain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from custscore.errors import ConfigError
from custscore.models import calibration as CAL
from custscore.models.explain import make_explainer


def _overconfident(n=4000, seed=0):
    """True probabilities and a model's probabilities that are too extreme and shifted up (like class weights)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-2.0, 1.2, n)
    truth = 1 / (1 + np.exp(-z))
    y = (rng.random(n) < truth).astype(int)
    raw = 1 / (1 + np.exp(-(2.0 * z + 3.0)))
    return y, raw


@pytest.mark.parametrize("method", CAL.METHODS)
def test_calibrator_is_monotone_and_survives_the_manifest_round_trip(method):
    y, raw = _overconfident()
    cal = CAL.Calibrator(method).fit(raw, y)
    grid = np.linspace(0, 1, 101)
    out = cal.transform(grid)
    assert np.all(np.diff(out) >= -1e-12) and out.min() >= 0 and out.max() <= 1
    again = CAL.Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.transform(raw), cal.transform(raw))


def test_choice_is_made_on_validation_and_lowers_brier_on_new_rows():
    y, raw = _overconfident(seed=1)
    choice = CAL.choose(raw[:2000], y[:2000], seed=0)
    assert choice.calibrator.method in CAL.METHODS
    assert set(choice.cv_brier) == set(CAL.METHODS)
    assert choice.cv_brier[choice.calibrator.method] == min(choice.cv_brier.values())
    held_raw, held_y = raw[2000:], y[2000:]  # never seen by the choice
    assert brier_score_loss(held_y, choice.calibrator.transform(held_raw)) < 0.8 * brier_score_loss(held_y, held_raw)
    assert choice.summary.startswith(f"{choice.calibrator.method} (validation Brier in 5-fold CV: isotonic ")


def test_calibrated_probabilities_are_left_alone():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.6, 60)
    y = (rng.random(60) < p).astype(int)
    choice = CAL.choose(p, y)
    assert choice.calibrator.method == "none"
    assert choice.summary.startswith("left uncalibrated, neither method helped (validation Brier in 5-fold CV: ")
    np.testing.assert_allclose(CAL.Calibrator.from_dict(choice.calibrator.to_dict()).transform(p), p)


def test_expected_calibration_error():
    assert CAL.expected_calibration_error([0, 1], [0.5, 0.5]) == pytest.approx(0.0)
    assert CAL.expected_calibration_error([0, 0], [0.9, 0.9]) == pytest.approx(0.9)
    assert CAL.expected_calibration_error([0, 1, 1, 1], [0.05, 0.95, 0.95, 0.95]) == pytest.approx(0.05)


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="calibration method 'beta' is unknown"):
        CAL.Calibrator("beta").fit([0.1, 0.9], [0, 1])


def test_calibrated_pipeline_predicts_calibrated_and_shap_explains_the_base_model(tmp_path):
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    y = (rng.random(3000) < 1 / (1 + np.exp(-(X["a"] - 2.5)))).astype(int)
    prep = ColumnTransformer([("num", StandardScaler(), ["a", "b"])], verbose_feature_names_out=False)
    base = Pipeline([("prep", prep), ("model", LogisticRegression(class_weight="balanced"))]).fit(X[:2000], y[:2000])
    choice = CAL.choose(base.predict_proba(X[2000:2500])[:, 1], y[2000:2500])
    wrapped = CAL.wrap(base, choice.calibrator.to_dict())
    assert isinstance(wrapped, CAL.CalibratedPipeline) and CAL.base_pipeline(wrapped) is base
    test = X[2500:]
    p = wrapped.predict_proba(test)[:, 1]
    np.testing.assert_allclose(p, choice.calibrator.transform(base.predict_proba(test)[:, 1]))
    np.testing.assert_allclose(wrapped.predict_proba(test).sum(axis=1), 1.0)
    assert brier_score_loss(y[2500:], p) < brier_score_loss(y[2500:], base.predict_proba(test)[:, 1])
    explanation = make_explainer(wrapped, X[:200], "classification").explain(test)
    assert explanation.units == "log-odds"  # the base model's margin, as the module docstring says
    np.testing.assert_allclose(explanation.output, base.decision_function(test), atol=1e-8)
    assert CAL.wrap(base, None) is base


def test_reliability_figure_is_written(tmp_path):
    y, raw = _overconfident(500)
    path = CAL.reliability_figure(y, {"before": raw, "after": CAL.choose(raw, y).calibrator.transform(raw)},
                                  tmp_path / "figs" / "rel.png")
    assert path.exists() and path.stat().st_size > 1000
