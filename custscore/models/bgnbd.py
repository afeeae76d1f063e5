"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") fitted by maximum likelihood.

The model: while alive, a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``; after each repeat
purchase they drop out for good with probability ``p ~ Beta(a, b)``. It reads each buyer's history
``(frequency x, recency t_x, T)`` (:mod:`custscore.models.rfm_summary`; any time unit, custscore uses days)
and gives per customer

* ``p_alive``: P(still alive at T | history) (Fader, Hardie & Lee, note 021);
* ``expected_purchases(t)``: E[purchases in (T, T + t] | history] (paper eq. 10);
* ``p_no_purchase(t)``: P(no purchase in (T, T + t] | history), the churn probability of a horizon ``t``.

Derivation of ``p_no_purchase``: dropout happens only right after a purchase, so a customer alive at T
makes no purchase in the next ``t`` with probability ``exp(-lambda t)``, and a dead one with probability 1.
Given alive at T, the history's likelihood is ``lambda^x exp(-lambda T) (1-p)^x``, so lambda's posterior is
``Gamma(r + x, alpha + T)``, independent of p, and ``E[exp(-lambda t)] = ((alpha + T) / (alpha + T + t))^(r + x)``.
Hence ``P(0 in (T, T+t]) = (1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + t))^(r + x)``.

Usage::

    from custscore.models.bgnbd import BetaGeoModel
    from custscore.models.rfm_summary import rfm_summary
    summary = rfm_summary(events, as_of)                 # frequency, recency, T in days
    bg = BetaGeoModel().fit(summary)                     # bg.r_, bg.alpha_, bg.a_, bg.b_
    bg.p_no_purchase(summary, 90)                        # churn probability over 90 days

Rows with ``T`` NaN (customers who never bought) are left out of the fit and predicted as NaN.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.special import digamma, expit, gammaln, hyp2f1

from custscore.models.likelihood_model import LikelihoodModel, buyer_histories, check_horizon, distinct_histories
from custscore.models.log_params import check_penalizer, fit_log_params
from custscore.models.rfm_summary import rfm_arrays

logger = logging.getLogger(__name__)



def bgnbd_log_likelihood(params, x, tx, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (paper eq. 6) at ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + tx), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def bgnbd_log_likelihood_grad(params, x, tx, T, weights) -> tuple[float, np.ndarray]:
    """Weighted sum of the BG/NBD log-likelihood and its gradient with respect to the log-parameters."""
    levels, inverse = np.unique(x, return_inverse=True)
    return _ll_grad(params, levels, inverse, np.bincount(inverse, weights=weights), tx, T, weights)


def _ll_grad(params, levels, inverse, level_weights, tx, T, weights):
    # the gamma functions depend on x only: evaluate them once per distinct frequency, not once per customer
    r, alpha, a, b = params
    xm = np.maximum(levels, 1.0)
    lx = levels[inverse]
    with np.errstate(divide="ignore", invalid="ignore"):
        c4 = np.where(levels > 0, np.log(a) - np.log(b + xm - 1.0), -np.inf)[inverse]
    log_aT = np.log(alpha + T)
    log_atx = np.log(alpha + tx)
    a3 = -(r + lx) * log_aT
    a4 = c4 - (r + lx) * log_atx
    top = np.logaddexp(a3, a4)
    w4 = np.exp(a4 - top)
    w3 = 1.0 - w4
    per_level_ll = gammaln(r + levels) + gammaln(b + levels) - gammaln(a + b + levels)
    ll = (level_weights @ per_level_ll + weights.sum() * (gammaln(a + b) - gammaln(r) - gammaln(b) + r * np.log(alpha))
          + weights @ top)
    dig_ab = digamma(a + b + levels)
    d_r = (level_weights @ digamma(r + levels) + weights.sum() * (np.log(alpha) - digamma(r))
           - weights @ (w3 * log_aT + w4 * log_atx))
    d_alpha = weights.sum() * r / alpha - weights @ ((r + lx) * (w3 / (alpha + T) + w4 / (alpha + tx)))
    d_ab = weights.sum() * digamma(a + b) - level_weights @ dig_ab
    ww4 = weights * w4
    d_a = d_ab + ww4.sum() / a
    d_b = (d_ab + level_weights @ digamma(b + levels) - weights.sum() * digamma(b)
           - ww4 @ (1.0 / (b + xm - 1.0))[inverse])
    return float(ll), np.array([d_r, d_alpha, d_a, d_b]) * np.asarray(params)


def _log_hyp_term(r, a, b, x, z):
    """log 2F1(r+x, b+x; a+b+x-1; z), through Euler's transformation where the series overflows."""
    aa, bb, cc = r + x, b + x, a + b + x - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.log(hyp2f1(aa, bb, cc, z))
        euler = np.log(hyp2f1(cc - aa, cc - bb, cc, z)) + (cc - aa - bb) * np.log1p(-z)
    return np.where(np.isfinite(direct), direct, euler)


class BetaGeoModel(LikelihoodModel):
    """BG/NBD customer-base model.

    Parameters
    ----------
    penalizer : float
        L2 penalty on the log of the shape parameters r, a and b (not on the time scale alpha, so the
        penalty does not depend on the time unit), added to the mean negative log-likelihood. 0 is plain
        maximum likelihood; 0.001-0.01 keeps a and b finite on small or dropout-free samples.
    max_iter : int
        L-BFGS-B iteration limit.

    Attributes
    ----------
    r_, alpha_, a_, b_ : float
        Fitted parameters (alpha in the time unit of the data, days in custscore).
    log_likelihood_ : float
        Total log-likelihood of the fitted buyers.
    n_customers_ : int
        Buyers the model was fitted on.
    """

    PARAMS = ("r_", "alpha_", "a_", "b_")

    def fit(self, X, y=None):
        """Fit on buyers' histories: a frame with ``frequency``, ``recency``, ``T`` or an (n, 3) array.

        Returns
        -------
        self
        """
        pen = check_penalizer(self.penalizer)  # before the data: a bad setting is named first
        x, tx, T = buyer_histories(X, "BG/NBD")
        ux, utx, uT, weights = distinct_histories(x, tx, T)
        levels, inverse = np.unique(ux, return_inverse=True)
        level_weights = np.bincount(inverse, weights=weights)

        shapes = np.array([1.0, 0.0, 1.0, 1.0])  # the penalty leaves the time scale alpha alone

        def objective(theta):
            ll, grad = _ll_grad(np.exp(theta), levels, inverse, level_weights, utx, uT, weights)
            return -ll + pen * (shapes * theta ** 2).sum(), -grad + 2.0 * pen * shapes * theta

        scale = max(float(np.mean(T)), 1e-6)
        start = np.array([0.0, np.log(scale / max(float(np.mean(x)) + 1.0, 1.0)), 0.0, 0.0])
        res = fit_log_params(objective, start, self.max_iter, "BG/NBD", jac=True)
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in np.exp(res.x))
        self.log_likelihood_ = float(bgnbd_log_likelihood(self.params_, x, tx, T).sum())
        self.n_customers_ = int(len(x))
        self.n_iter_ = int(res.nit)
        logger.info("BG/NBD on %d buyers: r=%.4g alpha=%.4g a=%.4g b=%.4g", self.n_customers_, *self.params_)
        return self

    def log_likelihood(self, X) -> np.ndarray:
        """Per-customer log-likelihood of histories under the fitted parameters (NaN for non-buyers)."""
        x, tx, T = rfm_arrays(X)
        return bgnbd_log_likelihood(self.params_, x, tx, T)

    def p_alive(self, X) -> np.ndarray:
        """P(alive at T | history); 1 for buyers without a repeat purchase (BG/NBD's convention)."""
        r, alpha, a, b = self.params_
        x, tx, T = rfm_arrays(X)
        log_odds_dead = (r + x) * np.log((alpha + T) / (alpha + tx)) + np.log(a / (b + np.maximum(x, 1.0) - 1.0))
        out = np.where(x > 0, expit(-log_odds_dead), 1.0)
        return np.where(np.isnan(T), np.nan, out)

    def expected_purchases(self, X, t: float) -> np.ndarray:
        """E[purchases in (T, T + t] | history] (paper eq. 10), ``t`` in the data's time unit."""
        t = check_horizon(t)
        r, alpha, a, b = self.params_
        x, tx, T = rfm_arrays(X)
        if t == 0:
            return np.where(np.isnan(T), np.nan, 0.0)
        z = t / (alpha + T + t)
        a = _away_from_one(a)
        first = (a + b + x - 1.0) / (a - 1.0)
        second = 1.0 - np.exp(_log_hyp_term(r, a, b, x, z) + (r + x) * np.log((alpha + T) / (alpha + T + t)))
        denom = 1.0 + (x > 0) * (a / (b + np.maximum(x, 1.0) - 1.0)) * ((alpha + T) / (alpha + tx)) ** (r + x)
        return first * second / denom

    def p_no_purchase(self, X, t: float) -> np.ndarray:
        """P(no purchase in (T, T + t] | history): (1 - P(alive)) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x)."""
        t = check_horizon(t)
        r, alpha, _, _ = self.params_
        x, _, T = rfm_arrays(X)
        alive = self.p_alive(X)
        quiet_if_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        return (1.0 - alive) + alive * quiet_if_alive

    def expected_purchases_new(self, t: float) -> float:
        """E[purchases in (0, t]] for a customer who just made their first purchase (paper eq. 9)."""
        t = check_horizon(t)
        r, alpha, a, b = self.params_
        a = _away_from_one(a)
        hyp = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))
        return float((a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp))


def _away_from_one(a: float) -> float:
    """a nudged off 1, where the expectations are a 0/0 limit (the error this makes is below 1e-6 relative)."""
    return a if abs(a - 1.0) >= 1e-6 else 1.0 + np.copysign(1e-6, a - 1.0)


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, T, horizon: float = 0.0,
                   seed: int = 0) -> pd.DataFrame:
    """Draw buyers' histories from the BG/NBD process (for tests and benchmarks).

    Parameters
    ----------
    n : int
        Customers; each makes a first purchase at time 0.
    r, alpha, a, b : float
        BG/NBD parameters.
    T : float or array of shape (n,)
        Age of each customer at the end of the observation period.
    horizon : float
        Length of a holdout period after T whose purchases are counted in ``future``.
    seed : int
        Seed of the random generator.

    Returns
    -------
    DataFrame
        ``frequency``, ``recency``, ``T``, ``future`` (purchases in (T, T + horizon]), ``alive``
        (not dropped out by T), ``lam``, ``p``.
    """
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    now = np.zeros(n)
    x = np.zeros(n)
    tx = np.zeros(n)
    future = np.zeros(n)
    active = np.ones(n, dtype=bool)
    death = np.full(n, np.inf)
    end = T + horizon
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1.0, idx.size) / np.maximum(lam[idx], 1e-300)
        over = now[idx] > end[idx]
        active[idx[over]] = False
        idx = idx[~over]
        past = now[idx] <= T[idx]
        x[idx[past]] += 1
        tx[idx[past]] = now[idx[past]]
        future[idx[~past]] += 1
        dies = rng.random(idx.size) < p[idx]
        death[idx[dies]] = now[idx[dies]]
        active[idx[dies]] = False
    return pd.DataFrame({"frequency": x, "recency": tx, "T": T, "future": future, "alive": death > T,
                         "lam": lam, "p": p})
