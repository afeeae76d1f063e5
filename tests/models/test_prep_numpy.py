"""The NumPy replay of fitted prep steps gives sklearn's matrix, and steps it does not know fall back to sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer

from custscore.models.prep_numpy import compile_transform, sklearn_transform
from custscore.models.zoo import make_preprocessor

NUMS = ["recency_days", "orders_total", "gap_mean_days", "spend_mean", "income"]
CATS = ["region", "channel"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({c: rng.gamma(2.0, 30.0, size=n) for c in NUMS}, index=[f"c{i}" for i in range(n)])
    X.loc[rng.random(n) < 0.15, "income"] = np.nan
    X.loc[rng.random(n) < 0.1, "spend_mean"] = -5.0  # a refund: clipped before log1p
    X["region"] = pd.Series(rng.choice(["north", "south", "east"], size=n), index=X.index, dtype=object)
    X["channel"] = pd.Series(rng.choice(["web", "store"], size=n), index=X.index, dtype=object)
    X.loc[X.index[::7], "region"] = None
    X.loc[X.index[::11], "channel"] = np.nan
    return X


def _fit(prep, select=None):
    X = _frame(300, 1)
    y = X["recency_days"] * 0.1 + np.nan_to_num(X["income"]) * 0.01
    steps = [("prep", prep)] + ([("select", select)] if select is not None else []) + [("model", Ridge())]
    return Pipeline(steps).fit(X, y)


def test_replay_equals_sklearn_on_new_rows_with_missing_and_unknown_values():
    pipe = _fit(make_preprocessor(NUMS, CATS, log_cols=["income", "spend_mean"]), SelectKBest(f_regression, k=6))
    transform = compile_transform(pipe, _frame(40, 2))
    assert transform.__qualname__ == "compile_transform.<locals>.transform"  # the replay, not the fallback
    rows = _frame(25, 3)
    rows.loc[rows.index[0], "region"] = "atlantis"  # unseen category: all-zero one-hot, as handle_unknown="ignore"
    rows.loc[rows.index[1], NUMS] = np.nan
    np.testing.assert_allclose(transform(rows), sklearn_transform(pipe, rows), rtol=0, atol=1e-12)


def test_an_unknown_step_runs_through_sklearn_and_still_matches():
    prep = make_preprocessor(NUMS, CATS, log_cols=["income"])
    prep.transformers[0][1].steps.append(("quantile", QuantileTransformer(n_quantiles=20)))
    pipe = _fit(prep)
    rows = _frame(10, 4)
    np.testing.assert_allclose(compile_transform(pipe, _frame(20, 5))(rows), sklearn_transform(pipe, rows),
                               rtol=0, atol=1e-12)


def test_the_bgnbd_churn_pipeline_replays_its_passthrough_and_custbase_branch():
    prep = make_preprocessor(NUMS, CATS, log_cols=["income"], customer_base_horizon=90.0)
    X = _frame(300, 6)
    y = (X["recency_days"] > 60).astype(int)
    from sklearn.linear_model import LogisticRegression

    pipe = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))]).fit(X, y)
    rows = _frame(12, 7)
    rows.loc[rows.index[0], "orders_total"] = 0.0  # a customer who never bought: NaN values, then imputed
    transform = compile_transform(pipe, _frame(20, 8))
    np.testing.assert_allclose(transform(rows), sklearn_transform(pipe, rows), rtol=0, atol=1e-12)
    # the custbase branch runs through CustomerBaseFeatures.transform_array, not through sklearn's frames
    from custscore.models.customer_base import CustomerBaseFeatures

    want = transform(rows)
    original = CustomerBaseFeatures.transform
    CustomerBaseFeatures.transform = None  # a call through sklearn would fail now
    try:
        np.testing.assert_array_equal(transform(rows), want)
    finally:
        CustomerBaseFeatures.transform = original


def test_feature_rows_give_every_transform_the_frame_s_matrix_and_values():
    from custscore.models.prep_numpy import FeatureRows

    pipe = _fit(make_preprocessor(NUMS, CATS, log_cols=["income", "spend_mean"]))
    transform = compile_transform(pipe, _frame(40, 2))
    rows = _frame(15, 9)
    rows.insert(0, "unused", np.arange(15.0))  # extra columns, another order: transforms pick theirs by name
    converted = FeatureRows(rows[["channel", *NUMS[::-1], "unused", "region"]])
    np.testing.assert_array_equal(transform(converted), transform(rows[NUMS + CATS]))
    names = ["region", "income", "channel"]
    cells = converted.objects(converted.indices(names))
    want = rows[names].to_numpy(dtype=object)
    assert [[None if v != v else v for v in r] for r in cells.tolist()] == \
        [[None if v != v else v for v in r] for r in want.tolist()]
    rebuilt = FeatureRows.from_arrays(converted.columns, converted.numeric, converted.floats(np.flatnonzero(
        converted.numeric)), converted.objects(np.flatnonzero(~converted.numeric)), converted.index)
    pd.testing.assert_frame_equal(rebuilt.frame, converted.frame)
