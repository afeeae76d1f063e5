"""The customer-base models (BG/NBD, Gamma-Gamma; :mod:`custscore.models.customer_base`) inside churn training.

Two uses, both fitted inside each CV fold because they are Pipeline steps:

- **a family of its own** on the churn leaderboard, ``bgnbd``: P(no purchase in the horizon) *is* a churn
  probability. Its pipeline is ``prep`` (the four RFM inputs passed through) -> ``model``
  (:class:`FrameBetaGeoChurn`).
- **features for the ML families**: the shared ``prep`` ColumnTransformer gets a ``custbase`` branch that fits
  BG/NBD and Gamma-Gamma on the fold's training rows and outputs ``p_alive``, ``expected_purchases``,
  ``p_no_purchase`` and ``clv_12m`` (then median-imputed, log-scaled where heavy-tailed, standardised).

SHAP: the explainer sums contributions per raw column. The ``custbase`` branch reads
:data:`INPUTS` (``recency_days``, ``orders_total``, ``gap_mean_days``, ``spend_mean``) and writes one column per input
in that order, so ``p_alive``'s contribution is credited to ``recency_days``, ``expected_purchases``'s to
``orders_total``, ``p_no_purchase``'s to ``gap_mean_days`` and ``clv_12m``'s to ``spend_mean``: reasons stay in the
customer's own numbers ("last purchase 120 days ago raises churn risk").

:func:`customer_base_values` reads the fitted models back out of a registered churn pipeline, so the scorer writes
``p_alive``, ``expected_purchases`` and ``clv_12m`` with the same parameters the model was trained with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from custscore.models.customer_base import (
    CUSTOMER_BASE_COLUMNS,
    BetaGeoChurnClassifier,
    CustomerBaseFeatures,
    customer_base_inputs,
)
from custscore.models.gamma_gamma import clv
from custscore.models.log_transform import ClippedLog1p
from custscore.models.rfm_summary import rfm_from_columns

FAMILY = "bgnbd"
NOTE = ("the field's classic model: P(no purchase in the horizon) from BG/NBD on recency, frequency and age; "
        "no profile or category features")
INPUTS = ["recency_days", "orders_total", "gap_mean_days", "spend_mean"]  # order matters: see the module docstring
SCORE_FIELDS = ("p_alive", "expected_purchases", "clv_12m")


def available(numeric) -> bool:
    """Whether the feature list holds the four inputs BG/NBD needs."""
    return all(c in numeric for c in INPUTS)


def custbase_branch(horizon_days: float) -> Pipeline:
    """The ``custbase`` transformer of ``prep``: BG/NBD + Gamma-Gamma quantities, imputed, logged, scaled."""
    logged = [CUSTOMER_BASE_COLUMNS.index(c) for c in ("expected_purchases", "clv_12m")]
    return Pipeline([
        ("bgnbd", CustomerBaseFeatures(horizon_days=float(horizon_days), append=False)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("log", ClippedLog1p(columns=logged)),
        ("scale", StandardScaler()),
    ])


class FrameBetaGeoChurn(BetaGeoChurnClassifier):
    """:class:`BetaGeoChurnClassifier` that also takes the plain matrix the explainer passes (columns :data:`INPUTS`)."""

    def _frame(self, X):
        return X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float), columns=INPUTS)

    def fit(self, X, y):
        """Fit BG/NBD on the buyers among ``X`` (a frame or a matrix in :data:`INPUTS` order); returns self."""
        return super().fit(self._frame(X), y)

    def predict_proba(self, X) -> np.ndarray:
        """Columns P(buys again in the horizon), P(no purchase in the horizon)."""
        if isinstance(X, pd.DataFrame):
            return super().predict_proba(X)
        # the explainer's matrices: NumPy throughout (a frame per call cost ~5 ms, and SHAP makes several calls)
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(INPUTS):
            return super().predict_proba(self._frame(X))  # its error names the problem
        recency_days, orders, gap, spend = X.T
        frequency, recency, T, _ = rfm_from_columns(orders, recency_days, gap, spend)
        return self.proba_from_rfm(np.column_stack([frequency, recency, T]))


def family_pipeline(horizon_days: float) -> Pipeline:
    """The ``bgnbd`` churn family: the four inputs passed through, then BG/NBD's P(no purchase in the horizon)."""
    prep = ColumnTransformer([("rfm", "passthrough", INPUTS)], verbose_feature_names_out=False)
    prep.set_output(transform="pandas")
    return Pipeline([("prep", prep), ("model", FrameBetaGeoChurn(horizon_days=float(horizon_days)))])


def _fitted_models(pipeline):
    """(BetaGeoModel, GammaGammaModel or None, CustomerBaseFeatures or None) inside a fitted churn pipeline."""
    steps = getattr(pipeline, "named_steps", {})
    model = steps.get("model")
    if isinstance(model, BetaGeoChurnClassifier):
        return model.bg_, None, None
    prep = steps.get("prep")
    branch = getattr(prep, "named_transformers_", {}).get("custbase")
    if branch is not None:
        feats = branch.named_steps["bgnbd"]
        return feats.bg_, feats.gg_, feats
    return None, None, None


def customer_base_arrays(pipeline, inputs: np.ndarray):
    """:func:`customer_base_values` from a float matrix of the :data:`INPUTS` columns: name -> array, or None.

    NumPy only (the API scores a few customers at a time, the worker hundreds), for a BG/NBD churn classifier or a
    ``custbase`` branch fitted on :data:`INPUTS`. ``NotImplemented`` for a pipeline whose values need the feature
    frame: call :func:`customer_base_values` then.
    """
    bg, gg, feats = _fitted_models(pipeline)
    if bg is None:
        return None
    if feats is not None:
        if list(feats.feature_names_in_) != INPUTS:
            return NotImplemented
        values = feats.transform_array(inputs)
        return {name: values[:, CUSTOMER_BASE_COLUMNS.index(name)] for name in SCORE_FIELDS}
    if gg is not None:
        return NotImplemented
    model = pipeline.named_steps["model"]
    recency_days, orders, gap, spend = np.asarray(inputs, dtype=float).T
    frequency, recency, T, monetary = rfm_from_columns(orders, recency_days, gap, spend)
    arrays = np.column_stack([frequency, recency, T])
    return {"p_alive": bg.p_alive(arrays).astype(float),
            "expected_purchases": bg.expected_purchases(arrays, float(model.horizon_days)).astype(float),
            "clv_12m": (monetary * bg.expected_purchases(arrays, 365.0)).astype(float)}


def customer_base_values(pipeline, X: pd.DataFrame) -> pd.DataFrame | None:
    """``p_alive``, ``expected_purchases`` (in the churn horizon) and ``clv_12m`` per row, or None.

    Taken from the BG/NBD (and Gamma-Gamma) models fitted inside a churn pipeline; None when the pipeline has
    none (e.g. trained without the four inputs). NaN for customers who never bought.
    """
    bg, gg, feats = _fitted_models(pipeline)
    if bg is None or not available(X.columns):
        return None
    if feats is not None:
        return feats.customer_base_values(X)[list(SCORE_FIELDS)]
    model = pipeline.named_steps["model"]
    rfm = customer_base_inputs(X)
    if gg is not None:
        return pd.DataFrame({"p_alive": bg.p_alive(rfm),
                             "expected_purchases": bg.expected_purchases(rfm, float(model.horizon_days)),
                             "clv_12m": clv(bg, gg, rfm)}, index=X.index).astype(float)
    arrays = rfm[["frequency", "recency", "T"]].to_numpy(dtype=float)  # once, not once per BG/NBD quantity
    spend = rfm["monetary_value"].to_numpy(float)
    return pd.DataFrame({"p_alive": bg.p_alive(arrays),
                         "expected_purchases": bg.expected_purchases(arrays, float(model.horizon_days)),
                         "clv_12m": spend * bg.expected_purchases(arrays, 365.0)}, index=X.index).astype(float)
