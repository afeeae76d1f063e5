"""Customer-base models (BG/NBD + Gamma-Gamma) as sklearn steps: a feature transformer and a churn classifier.

How to use (both work on the model feature frame of :func:`custscore.models.features.customer_features`,
or on an :func:`custscore.models.rfm_summary.rfm_summary` frame; time in days)::

    from custscore.models.customer_base import CustomerBaseFeatures, BetaGeoChurnClassifier

    # (a) inputs for the ML families, fitted inside each training fold (put it before ``prep``):
    step = CustomerBaseFeatures(horizon_days=90)           # appends p_alive, expected_purchases,
    X2 = step.fit(X_train).transform(X_test)               # p_no_purchase, clv_12m to the frame
    # prep must then list CUSTOMER_BASE_COLUMNS among its numeric columns.

    # (b) BG/NBD as a churn family (no ``prep`` step: it reads the raw frame):
    clf = BetaGeoChurnClassifier(horizon_days=90).fit(X_train, y_train)   # y = 1: no purchase in horizon
    clf.predict_proba(X_test)[:, 1]                        # P(no purchase in the next 90 days)

From the feature frame the models read ``orders_total``, ``recency_days``, ``gap_mean_days`` and
``spend_mean`` (see :func:`~custscore.models.rfm_summary.rfm_from_features` for the two approximations
this makes). Customers who never bought (``orders_total`` 0) are outside the buyers' population BG/NBD
describes: the transformer gives them NaN (the imputer or a separate new-customer model deals with them),
the classifier gives them the churn rate of the non-buyers it saw in training.

Both steps are unsupervised in the customer-base part: they fit BG/NBD (and Gamma-Gamma) on the buyers of
the ``X`` they are fitted on, so inside a CV fold they only ever see that fold's training rows.
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from custscore.errors import CustscoreError, InputError, ModelError
from custscore.models.bgnbd import BetaGeoModel
from custscore.models.feature_catalogue import Feature
from custscore.models.gamma_gamma import GammaGammaModel, clv_from_spend
from custscore.models.rfm_summary import RFM_COLUMNS, rfm_from_columns, rfm_from_features

logger = logging.getLogger(__name__)

CUSTOMER_BASE_FEATURES = [
    Feature("p_alive", "num", "BG/NBD probability the customer is still active"),
    Feature("expected_purchases", "num", "BG/NBD expected purchases in the horizon", log=True),
    Feature("p_no_purchase", "num", "BG/NBD probability of no purchase in the horizon"),
    Feature("clv_12m", "num", "expected spend in the next 12 months (BG/NBD x Gamma-Gamma)", log=True),
]
CUSTOMER_BASE_COLUMNS = [f.name for f in CUSTOMER_BASE_FEATURES]


def customer_base_inputs(X) -> pd.DataFrame:
    """``frequency``, ``recency``, ``T`` (days), ``monetary_value`` from an RFM summary or a feature frame."""
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"X is a {type(X).__name__}; pass a DataFrame (a feature frame or an rfm_summary)")
    if all(c in X.columns for c in RFM_COLUMNS):
        out = X[list(RFM_COLUMNS)].astype(float)
        out["monetary_value"] = (X["monetary_value"].astype(float) if "monetary_value" in X.columns
                                 else 0.0)
        return out
    return rfm_from_features(X)


def _check_days(name: str, value) -> float:
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = float("nan")
    if not np.isfinite(days) or days <= 0:
        raise InputError(f"{name}={value!r} must be a positive number of days; pass e.g. {name}=90")
    return days


# fitted CustomerBaseFeatures -> (its last input matrix's shape and bytes, the values): kept off the estimator so a
# saved model never carries it, and dropped with the estimator
_LAST_VALUES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class CustomerBaseFeatures(TransformerMixin, BaseEstimator):
    """Adds BG/NBD and Gamma-Gamma quantities per customer, fitted on the training rows.

    Parameters
    ----------
    horizon_days : float
        Horizon of ``expected_purchases`` and ``p_no_purchase`` (use the churn label's horizon).
    clv_days : float
        Horizon of ``clv_12m`` (365 = twelve months).
    discount_rate : float
        Annual discount rate of the CLV (0 = none).
    penalizer : float
        Penalty on the models' log shape parameters (see :class:`~custscore.models.bgnbd.BetaGeoModel`).
    append : bool
        True: return the input frame with the four columns appended; False: only the four columns.

    Attributes
    ----------
    bg_ : BetaGeoModel
    gg_ : GammaGammaModel or None
        None when the training rows do not support a spend model (too few repeat buyers); the CLV then
        uses each customer's own mean order value, or the buyers' median for one-time buyers.
    fallback_spend_ : float
        That median.
    """

    def __init__(self, horizon_days: float = 90.0, clv_days: float = 365.0, discount_rate: float = 0.0,
                 penalizer: float = 0.001, append: bool = True):
        self.horizon_days = horizon_days
        self.clv_days = clv_days
        self.discount_rate = discount_rate
        self.penalizer = penalizer
        self.append = append

    def fit(self, X, y=None):
        """Fit BG/NBD and Gamma-Gamma on the buyers in ``X``; returns self."""
        _check_days("horizon_days", self.horizon_days)
        _check_days("clv_days", self.clv_days)
        rfm = customer_base_inputs(X)
        self.bg_ = BetaGeoModel(penalizer=self.penalizer).fit(rfm)
        spend = rfm["monetary_value"][(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
        self.fallback_spend_ = float(spend.median()) if len(spend) else 0.0
        try:
            self.gg_ = GammaGammaModel(penalizer=self.penalizer).fit(rfm)
        except CustscoreError as exc:
            logger.warning("no Gamma-Gamma spend model (%s); CLV uses each customer's mean order value", exc)
            self.gg_ = None
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def customer_base_values(self, X) -> pd.DataFrame:
        """The four columns for ``X`` (same index); NaN for customers who never bought."""
        if not hasattr(self, "bg_"):
            raise ModelError("CustomerBaseFeatures is not fitted; call fit(X) first")
        rfm = customer_base_inputs(X)
        values = self.values_from_rfm(*(rfm[c].to_numpy(dtype=float) for c in (*RFM_COLUMNS, "monetary_value")))
        return pd.DataFrame(values, index=X.index, columns=CUSTOMER_BASE_COLUMNS)

    def values_from_rfm(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary: np.ndarray
                        ) -> np.ndarray:
        """The four columns as an (n, 4) float matrix from the BG/NBD inputs as arrays (days)."""
        histories = np.column_stack([frequency, recency, T])
        horizon = float(self.horizon_days)
        out = np.empty((len(histories), len(CUSTOMER_BASE_COLUMNS)))
        out[:, 0] = self.bg_.p_alive(histories)
        out[:, 1] = self.bg_.expected_purchases(histories, horizon)
        out[:, 2] = self.bg_.p_no_purchase(histories, horizon)
        if self.gg_ is not None:
            spend = self.gg_.expected_spend(np.column_stack([frequency, monetary]))
            out[:, 3] = clv_from_spend(self.bg_, spend, histories, horizon_days=float(self.clv_days),
                                       discount_rate=float(self.discount_rate))
        else:
            own = np.where(monetary > 0, monetary, self.fallback_spend_)
            out[:, 3] = own * self.bg_.expected_purchases(histories, float(self.clv_days))
        return out

    def transform_array(self, X: np.ndarray) -> np.ndarray:
        """``transform`` with ``append=False`` on a float matrix of the fitted columns (``feature_names_in_``
        order): the NumPy replay of ``models/prep_numpy.py`` and the scorer's score fields, without a frame.

        The scorer asks twice for the same rows (the churn model's prep, then the score fields): the last answer
        per fitted step is kept (:data:`_LAST_VALUES`) and returned, as a copy, for an identical matrix."""
        if not hasattr(self, "bg_"):
            raise ModelError("CustomerBaseFeatures is not fitted; call fit(X) first")
        X = np.asarray(X, dtype=float)
        key = (X.shape, X.tobytes())
        last = _LAST_VALUES.get(self)
        if last is not None and last[0] == key:
            return last[1].copy()
        values = self._values_of_array(X)
        _LAST_VALUES[self] = (key, values)
        return values.copy()

    def _values_of_array(self, X: np.ndarray) -> np.ndarray:
        where = {name: i for i, name in enumerate(self.feature_names_in_)}
        if all(c in where for c in RFM_COLUMNS):
            monetary = X[:, where["monetary_value"]] if "monetary_value" in where else np.zeros(len(X))
            return self.values_from_rfm(*(X[:, where[c]] for c in RFM_COLUMNS), monetary)
        needed = ("orders_total", "recency_days", "gap_mean_days", "spend_mean")
        missing = [c for c in needed if c not in where]
        if missing:
            raise InputError(f"CustomerBaseFeatures was fitted without column(s) {', '.join(missing)}; "
                             "refit it on a feature frame of custscore.models.features.customer_features")
        return self.values_from_rfm(*rfm_from_columns(*(X[:, where[c]] for c in needed)))

    def transform(self, X):
        """``X`` with the four columns appended (or only the four columns when ``append`` is False)."""
        values = self.customer_base_values(X)
        if not self.append:
            return values
        return pd.concat([X.drop(columns=[c for c in CUSTOMER_BASE_COLUMNS if c in X.columns]), values], axis=1)

    def get_feature_names_out(self, input_features=None):
        """Output column names."""
        if not self.append:
            return np.asarray(CUSTOMER_BASE_COLUMNS, dtype=object)
        names = list(self.feature_names_in_ if input_features is None else input_features)
        return np.asarray([n for n in names if n not in CUSTOMER_BASE_COLUMNS] + CUSTOMER_BASE_COLUMNS,
                          dtype=object)


class BetaGeoChurnClassifier(ClassifierMixin, BaseEstimator):
    """BG/NBD as a churn model: ``predict_proba[:, 1]`` = P(no purchase in the next ``horizon_days``).

    The labels must mean what custscore's churn labels mean (1 = no purchase in the horizon) and
    ``horizon_days`` must be the labels' horizon. BG/NBD is fitted on the buyers in ``X`` without
    looking at ``y``; ``y`` only gives the churn rate of non-buyers, who get that rate.

    Parameters
    ----------
    horizon_days : float
        The churn horizon.
    penalizer : float
        Penalty on BG/NBD's log shape parameters.
    threshold : float
        ``predict`` returns 1 where the probability is at least this.

    Attributes
    ----------
    bg_ : BetaGeoModel
    classes_ : ndarray
        ``[0, 1]``.
    non_buyer_rate_ : float
        Training churn rate of customers without a purchase (of all rows when there were none).
    """

    def __init__(self, horizon_days: float = 90.0, penalizer: float = 0.001, threshold: float = 0.5):
        self.horizon_days = horizon_days
        self.penalizer = penalizer
        self.threshold = threshold

    def fit(self, X, y):
        """Fit BG/NBD on the buyers in ``X``; returns self."""
        _check_days("horizon_days", self.horizon_days)
        y = np.asarray(y)
        labels = set(np.unique(y).tolist())
        if not labels <= {0, 1}:
            raise InputError(f"y has labels {sorted(labels)!r}; BetaGeoChurnClassifier needs 0/1 churn labels "
                             "(1 = no purchase in the horizon)")
        rfm = customer_base_inputs(X)
        if len(y) != len(rfm):
            raise InputError(f"y has {len(y)} labels for {len(rfm)} rows of X; pass one label per row")
        self.bg_ = BetaGeoModel(penalizer=self.penalizer).fit(rfm)
        never = rfm["T"].isna().to_numpy()
        self.non_buyer_rate_ = float(y[never].mean()) if never.any() else float(y.mean())
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Columns P(buys again in the horizon), P(no purchase in the horizon)."""
        return self.proba_from_rfm(customer_base_inputs(X))

    def proba_from_rfm(self, rfm) -> np.ndarray:
        """:meth:`predict_proba` from BG/NBD inputs: an RFM frame or an (n, 3) array of frequency, recency, T."""
        if not hasattr(self, "bg_"):
            raise ModelError("BetaGeoChurnClassifier is not fitted; call fit(X, y) first")
        churn = self.bg_.p_no_purchase(rfm, float(self.horizon_days))
        churn = np.clip(np.where(np.isnan(churn), self.non_buyer_rate_, churn), 0.0, 1.0)
        return np.column_stack([1.0 - churn, churn])

    def predict(self, X) -> np.ndarray:
        """1 where P(no purchase in the horizon) >= ``threshold``."""
        return (self.predict_proba(X)[:, 1] >= self.threshold).astype(int)
