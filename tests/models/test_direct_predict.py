"""DirectPredictor answers exactly like scikit-learn, and falls back to it when it would not."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from custscore.models.direct_predict import DirectPredictor, direct_paths

rng = np.random.default_rng(7)
X = rng.normal(size=(300, 5))
y2 = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
y3 = np.digitize(X[:, 2], [-0.5, 0.5])
MODELS = {
    "logistic, 2 classes": (LogisticRegression().fit(X, y2), ["predict_proba", "predict"]),
    "logistic, 3 classes": (LogisticRegression().fit(X, y3), ["predict_proba", "predict"]),
    "tree classifier": (DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y3), ["predict_proba", "predict"]),
    "tree regressor": (DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, X[:, 3]), ["predict"]),
}


@pytest.mark.parametrize("name", MODELS)
def test_direct_answers_equal_sklearn_for_one_row_and_many(name):
    model, methods = MODELS[name]
    direct = DirectPredictor(model)
    assert set(direct_paths(model)) == set(methods)
    for rows in (X[:1], X[:7], X):
        for method in methods:
            got, ref = getattr(direct, method)(rows), getattr(model, method)(rows)
            if ref.dtype.kind == "f":
                np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
            else:
                np.testing.assert_array_equal(got, ref)
    assert direct._checked == set(methods)  # the direct path is in use after its first, compared call


def test_an_estimator_without_a_direct_path_is_called_as_is():
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y2)
    assert direct_paths(forest) == {}
    np.testing.assert_array_equal(DirectPredictor(forest).predict_proba(X[:3]), forest.predict_proba(X[:3]))


def test_a_direct_path_that_disagrees_is_dropped_with_a_warning(caplog):
    model = LogisticRegression().fit(X, y2)
    direct = DirectPredictor(model)
    direct._paths["predict_proba"] = lambda Z: np.full((len(Z), 2), 0.5)  # a wrong answer
    with caplog.at_level(logging.WARNING, logger="custscore.models.direct_predict"):
        first = direct.predict_proba(X[:4])
    np.testing.assert_array_equal(first, model.predict_proba(X[:4]))
    assert "LogisticRegression.predict_proba: the direct path disagrees with scikit-learn" in caplog.text
    np.testing.assert_array_equal(direct.predict_proba(X[4:9]), model.predict_proba(X[4:9]))


def test_a_tree_given_nan_answers_as_sklearn_does():
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, X[:, 3])
    direct = DirectPredictor(model)
    direct.predict(X[:2])
    rows = X[:3].copy()
    rows[1, 0] = np.nan
    np.testing.assert_array_equal(direct.predict(rows), model.predict(rows))
