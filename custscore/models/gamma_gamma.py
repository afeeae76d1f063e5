"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie note 025) and 12-month CLV.

A customer's order values are ``Gamma(p, nu)`` around their own mean ``p / nu``, with ``nu ~ Gamma(q, v)``
across customers; order values are assumed independent of purchase frequency. Fitted on repeat buyers'
``(frequency x, monetary_value m_x)`` (mean of the repeat orders, :mod:`custscore.models.rfm_summary`), it
gives each customer's expected order value

    E[Z | x, m_x] = (q - 1) / (p x + q - 1) * (v p / (q - 1)) + p x / (p x + q - 1) * m_x,

a weighted average of the population mean ``v p / (q - 1)`` and the customer's own mean (customers without
repeat orders get the population mean). :func:`clv` combines it with a BG/NBD model:

    CLV = margin * E[Z] * sum_{k=1..K} (E[N(k h / K)] - E[N((k-1) h / K)]) / (1 + d) ** (k h / (K * 365))

with ``E[N(t)]`` the BG/NBD expected purchases in the next ``t`` days, horizon ``h`` = 365 days, ``K`` = 12
monthly steps and an annual discount rate ``d`` (0 by default, when CLV = E[Z] * E[N(365)]).

Usage::

    gg = GammaGammaModel().fit(summary)        # summary from rfm_summary; gg.p_, gg.q_, gg.v_
    gg.expected_spend(summary)
    clv(bg, gg, summary, horizon_days=365)     # bg: a fitted BetaGeoModel
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.special import gammaln

from custscore.errors import InputError, ModelError
from custscore.models.likelihood_model import LikelihoodModel
from custscore.models.log_params import check_penalizer, fit_log_params

logger = logging.getLogger(__name__)



def _spend_arrays(X, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """``frequency`` and ``monetary_value`` as float arrays from a frame or an (n, 2) array."""
    if isinstance(X, pd.DataFrame):
        missing = [c for c in ("frequency", "monetary_value") if c not in X.columns]
        if missing:
            raise InputError(f"{name} lacks column(s) {', '.join(missing)}; pass rfm_summary(...) output")
        x = X["frequency"].to_numpy(dtype=float)
        m = X["monetary_value"].to_numpy(dtype=float)
    else:
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise InputError(f"{name} has shape {arr.shape}; pass columns frequency, monetary_value")
        x, m = arr[:, 0], arr[:, 1]
    bad = (x < 0) | np.isnan(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}.frequency={float(x[i])!r} at row {i} is invalid; it must be a count >= 0")
    return x, m


def gamma_gamma_log_likelihood(params, x, m) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of ``x`` repeat orders with mean value ``m`` (x > 0, m > 0)."""
    p, q, v = params
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1.0) * np.log(m)
            + px * np.log(x) - (px + q) * np.log(x * m + v))


class GammaGammaModel(LikelihoodModel):
    """Gamma-Gamma model of average order value.

    Parameters
    ----------
    penalizer : float
        L2 penalty on the log of the shape parameters p and q (not on the money scale v), added to the
        mean negative log-likelihood.
    max_iter : int
        L-BFGS-B iteration limit.

    Attributes
    ----------
    p_, q_, v_ : float
        Fitted parameters (v in the currency of the amounts).
    n_customers_ : int
        Repeat buyers with a positive mean order value the model was fitted on.
    population_mean_ : float
        ``v p / (q - 1)``, the expected order value of a customer the model knows nothing about.
    """

    PARAMS = ("p_", "q_", "v_")

    def fit(self, X, y=None):
        """Fit on repeat buyers (``frequency > 0``, ``monetary_value > 0``); other rows are ignored.

        Returns
        -------
        self
        """
        pen = check_penalizer(self.penalizer)  # before the data: a bad setting is named first
        x, m = _spend_arrays(X)
        keep = (x > 0) & (m > 0) & np.isfinite(m)
        x, m = x[keep], m[keep]
        if len(x) < 2:
            raise InputError(f"Gamma-Gamma needs at least 2 repeat buyers with positive spend; got {len(x)}")

        def objective(theta):
            ll = gamma_gamma_log_likelihood(np.exp(theta), x, m)
            return -ll.mean() + pen * (theta[0] ** 2 + theta[1] ** 2)

        start = np.array([0.0, 0.0, np.log(max(float(np.median(m)), 1e-6))])
        res = fit_log_params(objective, start, self.max_iter, "Gamma-Gamma")
        self.p_, self.q_, self.v_ = (float(v) for v in np.exp(res.x))
        if self.q_ <= 1.0:
            raise ModelError(f"Gamma-Gamma fit gave q={self.q_:.3g} <= 1 (no finite mean order value); "
                             "try penalizer=0.01 or more repeat buyers")
        self.n_customers_ = int(len(x))
        self.population_mean_ = self.v_ * self.p_ / (self.q_ - 1.0)
        logger.info("Gamma-Gamma on %d repeat buyers: p=%.4g q=%.4g v=%.4g", self.n_customers_,
                    self.p_, self.q_, self.v_)
        return self

    def expected_spend(self, X) -> np.ndarray:
        """E[order value | x, m_x]; the population mean for customers without repeat orders or spend."""
        p, q, _ = self.params_
        x, m = _spend_arrays(X)
        known = (x > 0) & np.isfinite(m) & (m > 0)
        x = np.where(known, x, 0.0)
        m = np.where(known, m, 0.0)
        weight = p * x / (p * x + q - 1.0)
        return (1.0 - weight) * self.population_mean_ + weight * m


def clv(bg, gg: GammaGammaModel, X, horizon_days: float = 365.0, steps: int = 12, discount_rate: float = 0.0,
        margin: float = 1.0) -> np.ndarray:
    """Expected value of each customer's purchases in the next ``horizon_days`` (see the module formula).

    Parameters
    ----------
    bg : BetaGeoModel
        Fitted on the same histories, time in days.
    gg : GammaGammaModel
        Fitted spend model.
    X : DataFrame
        ``frequency``, ``recency``, ``T`` (days) and ``monetary_value`` per customer.
    horizon_days, steps : float, int
        The horizon and the number of equal discounting steps it is cut into.
    discount_rate : float
        Annual discount rate (0.1 = 10% a year); 0 means no discounting.
    margin : float
        Share of revenue that is profit (1 = revenue CLV).

    Returns
    -------
    ndarray
        CLV per customer in the currency of the amounts; NaN for customers who never bought.
    """
    return clv_from_spend(bg, gg.expected_spend(X), X, horizon_days, steps, discount_rate, margin)


def clv_from_spend(bg, spend: np.ndarray, histories, horizon_days: float = 365.0, steps: int = 12,
                   discount_rate: float = 0.0, margin: float = 1.0) -> np.ndarray:
    """:func:`clv` given the expected spend per purchase and the histories in any form ``bg`` reads (a frame or
    an (n, 3) ``frequency, recency, T`` matrix): the NumPy path of the scorer and the API."""
    if not (np.isfinite(discount_rate) and discount_rate > -1):
        raise InputError(f"discount_rate={discount_rate!r} must be a number above -1; pass e.g. 0.1 for 10% a year")
    if int(steps) < 1:
        raise InputError(f"steps={steps!r} must be at least 1; pass e.g. 12 (monthly)")
    if discount_rate == 0:
        return margin * spend * bg.expected_purchases(histories, horizon_days)
    cumulative = [np.zeros(len(spend))]
    total = np.zeros(len(spend))
    for k in range(1, int(steps) + 1):
        t = horizon_days * k / steps
        cumulative.append(bg.expected_purchases(histories, t))
        total = total + (cumulative[k] - cumulative[k - 1]) / (1.0 + discount_rate) ** (t / 365.0)
    return margin * spend * total
