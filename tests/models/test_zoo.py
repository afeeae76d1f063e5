"""Model zoo pipelines, the preprocessor and the Keras wrappers."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import make_classification, make_regression

from custscore.errors import ConfigError
from custscore.models.evaluate import openmp_single_thread
from custscore.models.keras_mlp import KerasMLPClassifier, KerasMLPRegressor
from custscore.models.zoo import FAMILIES, FAMILY_NOTES, make_candidates, make_preprocessor, positive_weight

NUM = [f"x{i}" for i in range(6)]
CAT = ["region", "channel"]


def make_frame(kind, n=400, seed=0):
    """Synthetic feature frame in the shared convention: float numerics with NaNs, object categoricals with None."""
    rng = np.random.default_rng(seed)
    if kind == "classification":
        X, y = make_classification(n, 6, n_informative=4, weights=[0.8], random_state=seed)
    else:
        X, y = make_regression(n, 6, n_informative=4, noise=5.0, random_state=seed)
    df = pd.DataFrame(X, columns=NUM, index=[f"c{i}" for i in range(n)])
    df = df.mask(rng.random(df.shape) < 0.05)
    df["region"] = pd.Series(rng.choice(["north", "south", "east", None], n), index=df.index, dtype=object)
    df["channel"] = pd.Series(rng.choice(["web", "store"], n), index=df.index, dtype=object)
    return df, y


def _fast(pipe):
    """Shrink the MLP's epochs so the family sweep stays quick."""
    model = pipe.named_steps["model"]
    if isinstance(model, KerasMLPClassifier | KerasMLPRegressor):
        pipe.set_params(model__epochs=5)
    return pipe


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_every_family_fits_predicts_and_clones(kind):
    X, y = make_frame(kind)
    cands = make_candidates(kind, NUM, CAT, log_cols=["x0"], seed=0, y=y)
    assert list(cands) == list(FAMILIES[kind])
    for name, pipe in cands.items():
        assert [s for s, _ in pipe.steps] == ["prep", "model"], name
        assert [t[0] for t in pipe.named_steps["prep"].transformers] == ["num", "cat"]
        with openmp_single_thread():
            fitted = _fast(clone(pipe)).fit(X.iloc[:300], y[:300])
        if kind == "classification":
            assert is_classifier(fitted.named_steps["model"]), name
            proba = fitted.predict_proba(X.iloc[300:])
            assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
        else:
            assert is_regressor(fitted.named_steps["model"]), name
            assert fitted.predict(X.iloc[300:]).shape == (100,)
        assert name in FAMILY_NOTES


def test_unknown_family_and_kind_are_config_errors():
    with pytest.raises(ConfigError, match="families: \\['voting'\\] unknown for regression"):
        make_candidates("regression", NUM, CAT, families=["voting"])
    with pytest.raises(ConfigError, match="kind: 'segment'"):
        make_candidates("segment", NUM, CAT)


def test_class_weights_reach_every_weighted_estimator():
    _, y = make_frame("classification")
    cands = make_candidates("classification", NUM, CAT, balance="weights", y=y,
                            families=["linear", "forest", "gboost", "xgboost", "mlp"])
    for name in ("linear", "forest", "gboost", "mlp"):
        assert cands[name].named_steps["model"].class_weight == "balanced"
    spw = cands["xgboost"].named_steps["model"].get_params()["scale_pos_weight"]
    assert spw == pytest.approx(positive_weight(y)) and spw > 2


def test_smote_resamples_training_folds_only(monkeypatch):
    X, y = make_frame("classification")
    calls = []
    original = SMOTE.fit_resample

    def spy(self, X_, y_):
        calls.append(len(X_))
        return original(self, X_, y_)

    monkeypatch.setattr(SMOTE, "fit_resample", spy)
    pipe = make_candidates("classification", NUM, CAT, balance="smote", families=["linear"])["linear"]
    assert [s for s, _ in pipe.steps] == ["prep", "smote", "model"]
    pipe.fit(X.iloc[:300], y[:300])
    assert calls == [300]
    proba = pipe.predict_proba(X.iloc[300:])
    assert calls == [300], "SMOTE must not run at predict time"
    assert proba.shape == (100, 2)


def test_preprocessor_logs_only_log_cols_and_clips_negatives():
    X = pd.DataFrame({"a": [-5.0, 0.0, np.e - 1, np.nan], "b": [-5.0, 0.0, 1.0, 2.0],
                      "r": ["x", None, "y", "x"]}, dtype=object).astype({"a": float, "b": float})
    prep = make_preprocessor(["a", "b"], ["r"], log_cols=["a"])
    out = prep.fit_transform(X)
    assert list(prep.get_feature_names_out()) == ["a", "b", "r_missing", "r_x", "r_y"]
    num = prep.named_transformers_["num"]
    unscaled = num.named_steps["scale"].inverse_transform(out[:, :2])
    # a: clipped at 0 then log1p (median fill 0 for the NaN row); b untouched.
    assert unscaled[:, 0] == pytest.approx([0.0, 0.0, 1.0, 0.0])
    assert unscaled[:, 1] == pytest.approx([-5.0, 0.0, 1.0, 2.0])
    with pytest.raises(ConfigError, match="log_cols"):
        make_preprocessor(["a"], [], log_cols=["zzz"])


def test_keras_classifier_is_sklearn_compatible_and_reproducible():
    X, y = make_classification(300, 5, random_state=1)
    labels = np.where(y == 1, "churn", "stay")
    model = KerasMLPClassifier(hidden=(8,), epochs=5, random_state=3)
    assert is_classifier(model) and clone(model).get_params() == model.get_params()
    a = clone(model).fit(X, labels).predict_proba(X[:20])
    fitted = clone(model).fit(X, labels)
    b = fitted.predict_proba(X[:20])
    np.testing.assert_allclose(a, b)
    assert a.shape == (20, 2) and list(fitted.classes_) == ["churn", "stay"]
    assert set(fitted.predict(X[:20])) <= {"churn", "stay"}


def test_keras_regressor_pickles_round_trip():
    X, y = make_regression(200, 4, noise=1.0, random_state=0)
    model = KerasMLPRegressor(hidden=(8,), epochs=3).fit(X, y)
    before = model.predict(X[:10])
    clone_ = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(clone_.predict(X[:10]), before, rtol=1e-6)
    assert hasattr(model, "model_"), "pickling must not strip the live model"


def test_keras_early_stopping_stops_before_epochs():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.normal(size=200)  # pure noise: validation loss stops improving fast
    model = KerasMLPRegressor(hidden=(16,), epochs=300, patience=2, learning_rate=1e-2).fit(X, y)
    assert model.n_epochs_ < 300


def test_a_fit_of_few_steps_runs_eagerly_and_a_default_fit_traces_its_graph():
    X, y = make_classification(300, 5, random_state=1)
    small = KerasMLPClassifier(hidden=(4,), epochs=2, random_state=0).fit(X, y)  # 2 epochs x 1 batch
    assert small.model_.run_eagerly and small.n_epochs_ == 2
    big = KerasMLPClassifier(hidden=(4,), epochs=40, patience=50, random_state=0).fit(X, y)  # 40 steps
    assert not big.model_.run_eagerly and big.n_epochs_ == 40
    assert small.predict_proba(X[:5]).shape == big.predict_proba(X[:5]).shape == (5, 2)
