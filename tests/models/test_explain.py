"""SHAP explanations: additivity per family, raw-feature columns, reasons, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
)
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from custscore.errors import ConfigError, InputError
from custscore.models.explain import global_importance, make_explainer, top_reasons
from custscore.models.shap_figures import save_shap_figures

NUMS = ["recency_days", "orders_90d", "income", "age"]
CATS = ["region", "channel"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = 400
    X = pd.DataFrame({c: rng.normal(size=n) for c in NUMS}, index=[f"c{i:04d}" for i in range(n)])
    X.loc[rng.random(n) < 0.1, "income"] = np.nan
    X["region"] = pd.Series(rng.choice(["north", "south", "east"], size=n), index=X.index, dtype=object)
    X["channel"] = pd.Series(rng.choice(["web", "store"], size=n), index=X.index, dtype=object)
    X.loc[rng.random(n) < 0.1, "region"] = None
    # recency drives the target most, then the region
    y = 3.0 * X["recency_days"] + 1.0 * (X["region"] == "north") + 0.3 * rng.normal(size=n)
    return X, y, (y > y.median()).astype(int)


def _pipeline(est, select=None):
    prep = ColumnTransformer(
        [("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMS),
         ("cat", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                           ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), CATS)],
        verbose_feature_names_out=False)
    steps = [("prep", prep)] + ([("select", select)] if select is not None else []) + [("model", est)]
    return Pipeline(steps)


def _margin(pipe, X):
    """The output the exact explainers decompose: prediction, log-odds, or class-1 probability for forests."""
    model, Xt = pipe.named_steps["model"], pipe[:-1].transform(X)
    if not hasattr(model, "predict_proba"):
        return model.predict(Xt)
    if isinstance(model, xgb.XGBClassifier):
        return model.get_booster().predict(xgb.DMatrix(Xt), output_margin=True)
    if isinstance(model, DecisionTreeClassifier | RandomForestClassifier):
        return model.predict_proba(Xt)[:, 1]
    return model.decision_function(Xt)


EXACT = [
    ("regression", Ridge()),
    ("classification", LogisticRegression(max_iter=500)),
    ("regression", DecisionTreeRegressor(max_depth=5, random_state=0)),
    ("regression", RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0, n_jobs=1)),
    ("classification", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0, n_jobs=1)),
    ("regression", HistGradientBoostingRegressor(max_iter=50, random_state=0)),
    ("classification", HistGradientBoostingClassifier(max_iter=50, random_state=0)),
    ("classification", GradientBoostingClassifier(n_estimators=30, random_state=0)),
    ("regression", xgb.XGBRegressor(n_estimators=50, max_depth=4, n_jobs=1, random_state=0)),
    ("classification", xgb.XGBClassifier(n_estimators=50, max_depth=4, n_jobs=1, random_state=0)),
]


@pytest.mark.parametrize(("kind", "est"), EXACT, ids=lambda v: type(v).__name__ if not isinstance(v, str) else v)
def test_exact_explainers_add_up_to_the_model_output_per_raw_feature(data, kind, est):
    X, y, yb = data
    pipe = _pipeline(est).fit(X, y if kind == "regression" else yb)
    ex = make_explainer(pipe, X, kind).explain(X.iloc[:100])
    assert ex.values.shape == (100, X.shape[1])  # one-hot columns summed back onto region / channel
    assert ex.feature_names == list(X.columns)
    expected = _margin(pipe, X.iloc[:100])
    np.testing.assert_allclose(ex.output, expected, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected).max()))
    assert global_importance(ex).index[0] == "recency_days"


def test_units_follow_the_family(data):
    X, y, yb = data
    assert make_explainer(_pipeline(Ridge()).fit(X, y), X, "regression", target_units="points").units == "points"
    assert make_explainer(_pipeline(LogisticRegression()).fit(X, yb), X, "classification").units == "log-odds"
    forest = _pipeline(RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1)).fit(X, yb)
    assert make_explainer(forest, X, "classification").units == "probability"


def test_selected_out_features_get_zero_and_shape_stays_raw(data):
    X, y, _ = data
    pipe = _pipeline(Ridge(), select=SelectKBest(f_regression, k=3)).fit(X, y)
    ex = make_explainer(pipe, X, "regression").explain(X.iloc[:50])
    assert ex.values.shape == (50, X.shape[1])
    kept = set(pipe.named_steps["select"].get_feature_names_out(pipe.named_steps["prep"].get_feature_names_out()))
    for j, name in enumerate(X.columns):
        if not any(k == name or k.startswith(f"{name}_") for k in kept):
            assert np.all(ex.values[:, j] == 0.0), name
    np.testing.assert_allclose(ex.output, pipe.predict(X.iloc[:50]), atol=1e-8)


def test_smote_step_is_skipped_when_explaining(data):
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline as ImbPipeline

    X, _, yb = data
    base = _pipeline(LogisticRegression(max_iter=500))
    pipe = ImbPipeline([("prep", base.named_steps["prep"]), ("smote", SMOTE(random_state=0)),
                        ("model", base.named_steps["model"])]).fit(X, yb)
    ex = make_explainer(pipe, X, "classification").explain(X.iloc[:20])
    np.testing.assert_allclose(ex.output, pipe.decision_function(X.iloc[:20]), atol=1e-8)


def test_top_reasons_name_the_sign_and_missing_values(data):
    X, y, _ = data
    pipe = _pipeline(Ridge()).fit(X, y)
    rows = X[X["income"].isna()].iloc[:10]
    ex = make_explainer(pipe, X, "regression").explain(rows)
    reasons = top_reasons(ex, rows, k=len(X.columns), target_phrase="satisfaction")
    assert len(reasons) == len(rows)
    for row in reasons:
        contributions = [abs(r["contribution"]) for r in row]
        assert contributions == sorted(contributions, reverse=True)
        for r in row:
            verb = "raises" if r["contribution"] > 0 else "lowers"
            assert r["sentence"].endswith(f"{verb} satisfaction")
        by_feature = {r["feature"]: r for r in row}
        assert by_feature["income"]["value"] is None  # imputed to the median, which still shifts the prediction
    first = top_reasons(ex, rows, k=2, describe=lambda name, value: f"<{name}>")[0]
    assert len(first) == 2 and first[0]["sentence"].startswith(f"<{first[0]['feature']}> ")
    assert isinstance(first[0]["contribution"], float)


def test_reason_values_are_plain_python(data):
    X, y, _ = data
    pipe = _pipeline(Ridge()).fit(X, y)
    ex = make_explainer(pipe, X, "regression").explain(X.iloc[:5])
    for row in top_reasons(ex, X.iloc[:5], k=len(X.columns)):
        for r in row:
            assert r["value"] is None or type(r["value"]) in (float, str)


def test_voting_ensemble_uses_a_bounded_model_agnostic_explainer(data):
    X, _, yb = data
    vote = VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                             ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))], voting="soft")
    pipe = _pipeline(vote).fit(X, yb)
    explainer = make_explainer(pipe, X, "classification", seed=0)
    assert explainer.method == "permutation" and explainer.units == "probability"
    assert len(explainer.background_t) <= 50
    model_rows, model_calls = [], []
    real_predict_proba = explainer.model.predict_proba

    def counting_predict_proba(Z):
        model_calls.append(1)
        model_rows.append(len(Z))
        return real_predict_proba(Z)

    explainer.model = type("Counting", (), {"predict_proba": staticmethod(counting_predict_proba),
                                            "classes_": explainer.model.classes_})()
    ex = explainer.explain(X.iloc[:100])
    explainer.model = pipe.named_steps["model"]
    groups, background = X.shape[1], len(explainer.background_t)
    # The work is bounded by rows x features x background (two antithetic passes), in a few vectorised calls.
    assert sum(model_rows) <= 2 * 100 * groups * background + background + 100
    assert len(model_calls) <= 2 * groups + 2
    assert ex.values.shape == (100, X.shape[1])
    np.testing.assert_allclose(ex.output, pipe.predict_proba(X.iloc[:100])[:, 1], atol=1e-9)  # exact by telescoping
    assert global_importance(ex).index[0] == "recency_days"
    again = make_explainer(pipe, X, "classification", seed=0).explain(X.iloc[:100])
    np.testing.assert_array_equal(ex.values, again.values)


def test_multiclass_tree_explains_each_rows_predicted_class(data):
    X, y, _ = data
    segments = pd.cut(y, 3, labels=["low", "mid", "high"]).astype(str)
    pipe = _pipeline(DecisionTreeClassifier(max_depth=4, random_state=0)).fit(X, segments)
    ex = make_explainer(pipe, X, "segment").explain(X.iloc[:60])
    predicted = pipe.predict(X.iloc[:60])
    np.testing.assert_array_equal(ex.explained_class, predicted)
    assert np.shape(ex.base_value) == (60,)
    proba = pipe.predict_proba(X.iloc[:60])
    np.testing.assert_allclose(ex.output, proba.max(axis=1), atol=1e-9)


def test_figures_are_png_files_and_leave_no_open_figure(data, tmp_path):
    import matplotlib.pyplot as plt

    X, y, _ = data
    pipe = _pipeline(DecisionTreeRegressor(max_depth=4, random_state=0)).fit(X, y)
    ex = make_explainer(pipe, X, "regression").explain(X)
    before = plt.get_fignums()
    paths = save_shap_figures(ex, X, tmp_path / "figs", "satisfaction", max_rows=200)
    assert [p.name for p in paths] == ["satisfaction_shap_importance.png", "satisfaction_shap_beeswarm.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
    assert plt.get_fignums() == before


def test_bad_input_is_refused_with_the_fix(data):
    X, y, _ = data
    pipe = _pipeline(Ridge()).fit(X, y)
    with pytest.raises(ConfigError, match="kind 'churn'"):
        make_explainer(pipe, X, "churn")
    with pytest.raises(InputError, match="income"):
        make_explainer(pipe, X, "regression").explain(X.drop(columns=["income"]))
