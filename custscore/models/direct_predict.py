"""A fitted model step's predictions on the matrix its own pipeline produced, without sklearn's per-call checks.

Every ``predict``/``predict_proba`` of a scikit-learn estimator first validates its input (``validate_data``:
feature names through narwhals, dtype, finiteness), about 0.4 ms per call. The scorer calls the model step of each
task on the matrix that task's pipeline prep has just produced (``Explainer.transform``), so those checks repeat
what is already true. For a few customers (an API request) they were a tenth of the compute.

:class:`DirectPredictor` answers like the estimator, through the estimator's own unchecked path where it has one
(decision trees: ``check_input=False``) or through the fitted coefficients (logistic regression:
``expit``/softmax of ``X @ coef_.T + intercept_``, as sklearn computes it). Its first call of each method also
runs sklearn's and compares the two; on any difference the direct path is dropped for good, with a warning, and
sklearn answers from then on. Other estimators (XGBoost, forests, Keras) go to their own methods unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

log = logging.getLogger(__name__)

RTOL, ATOL = 1e-9, 1e-12  # a different summation order of the same products, nothing more


def _tree_paths(model: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    def unchecked(method: Callable) -> Callable[[np.ndarray], np.ndarray]:
        def run(Z: np.ndarray) -> np.ndarray:
            Z32 = np.ascontiguousarray(Z, dtype=np.float32)  # what validate_data makes of it (dtype=np.float32)
            if not np.isfinite(Z32).all():
                return method(Z)  # sklearn's own answer to a NaN or infinity (an error, or its missing-value path)
            return method(Z32, check_input=False)
        return run

    paths = {"predict": unchecked(model.predict)}
    if isinstance(model, DecisionTreeClassifier):
        paths["predict_proba"] = unchecked(model.predict_proba)
    return paths


def _logistic_paths(model: LogisticRegression) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    coef = np.asarray(model.coef_, dtype=float)
    intercept = np.asarray(model.intercept_, dtype=float)
    classes = np.asarray(model.classes_)

    def proba(Z: np.ndarray) -> np.ndarray:
        decision = np.asarray(Z, dtype=float) @ coef.T + intercept
        if len(classes) <= 2:
            p = expit(decision[:, 0])
            return np.column_stack([1.0 - p, p])
        decision -= decision.max(axis=1, keepdims=True)
        np.exp(decision, out=decision)
        decision /= decision.sum(axis=1, keepdims=True)
        return decision

    return {"predict_proba": proba, "predict": lambda Z: classes[proba(Z).argmax(axis=1)]}


def direct_paths(model: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """method name -> the unchecked path of ``model`` (empty when it has none)."""
    if type(model) in (DecisionTreeClassifier, DecisionTreeRegressor) and getattr(model, "n_outputs_", 1) == 1:
        return _tree_paths(model)
    if type(model) is LogisticRegression and np.ndim(getattr(model, "coef_", None)) == 2:
        return _logistic_paths(model)
    return {}


def _same(got: np.ndarray, ref: np.ndarray) -> bool:
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape or got.dtype.kind != ref.dtype.kind and not (
            got.dtype.kind in "fiu" and ref.dtype.kind in "fiu"):
        return False
    if ref.dtype.kind in "fc":
        return bool(np.allclose(got, ref, rtol=RTOL, atol=ATOL, equal_nan=True))
    return bool(np.array_equal(got, ref))


class DirectPredictor:
    """``predict``/``predict_proba`` of a fitted model step, through its direct path once checked against sklearn.

    Parameters
    ----------
    model : estimator
        The fitted final step of a pipeline; its input is the pipeline prep's output.
    """

    def __init__(self, model: Any):
        self.model = model
        self._paths = direct_paths(model)
        self._checked: set[str] = set()

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self._call("predict", Z)

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self._call("predict_proba", Z)

    def _call(self, name: str, Z: np.ndarray) -> np.ndarray:
        path = self._paths.get(name)
        if path is None:
            return getattr(self.model, name)(Z)
        if name in self._checked:
            return path(Z)
        ref = getattr(self.model, name)(Z)
        if len(Z) and _same(path(Z), ref):
            self._checked.add(name)
        elif len(Z):
            log.warning("%s.%s: the direct path disagrees with scikit-learn; using scikit-learn's",
                        type(self.model).__name__, name)
            del self._paths[name]
        return ref
