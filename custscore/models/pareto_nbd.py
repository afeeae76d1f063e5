"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987) fitted by maximum likelihood (Fader & Hardie, note 008).

While alive a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``; their lifetime is exponential with
rate ``mu ~ Gamma(s, beta)`` (dropout can happen at any time, unlike BG/NBD). Same inputs and outputs as
:class:`custscore.models.bgnbd.BetaGeoModel`: ``frequency``, ``recency``, ``T`` per buyer (days in custscore),
``p_alive``, ``expected_purchases(t)`` and ``p_no_purchase(t)``.

``p_no_purchase`` uses that a history seen for ``t`` more periods without a purchase is the same history with
age ``T + t``: ``P(0 in (T, T+t] | x, t_x, T) = L(x, t_x, T + t) / L(x, t_x, T)`` (this identity also gives
BG/NBD's closed form, which the tests check).

Usage::

    pn = ParetoNBDModel().fit(summary)    # pn.r_, pn.alpha_, pn.s_, pn.beta_
    pn.p_no_purchase(summary, 90)

Slower than BG/NBD (two Gauss hypergeometric functions per customer and evaluation, numerical gradients).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import gammaln, hyp2f1

from custscore.models.likelihood_model import LikelihoodModel, buyer_histories, check_horizon, distinct_histories
from custscore.models.log_params import FAILED, check_penalizer, fit_log_params
from custscore.models.rfm_summary import rfm_arrays

logger = logging.getLogger(__name__)



def _log_a0_terms(params, x, tx, T):
    """log of the three pieces of the likelihood: A1, the 'alive at T' term and the 'died after t_x' term."""
    r, alpha, s, beta = params
    rsx = r + s + x
    if alpha >= beta:
        hi, b2 = alpha, s + 1.0
    else:
        hi, b2 = beta, r + x
    z_tx = abs(alpha - beta) / (hi + tx)
    z_T = abs(alpha - beta) / (hi + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.log(hyp2f1(rsx, b2, rsx + 1.0, z_tx)) - rsx * np.log(hi + tx)
        second = np.log(hyp2f1(rsx, b2, rsx + 1.0, z_T)) - rsx * np.log(hi + T)
        log_a0 = first + np.log(-np.expm1(second - first))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    dead = np.log(s) + log_a0 - np.log(rsx)
    return a1, alive, dead


def pareto_nbd_log_likelihood(params, x, tx, T) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood at ``params = (r, alpha, s, beta)``."""
    a1, alive, dead = _log_a0_terms(params, x, tx, T)
    return a1 + np.logaddexp(alive, dead)


class ParetoNBDModel(LikelihoodModel):
    """Pareto/NBD customer-base model.

    Parameters
    ----------
    penalizer : float
        L2 penalty on the log of the shape parameters r and s, added to the mean negative log-likelihood.
    max_iter : int
        L-BFGS-B iteration limit.

    Attributes
    ----------
    r_, alpha_, s_, beta_ : float
        Fitted parameters (alpha and beta in the time unit of the data).
    log_likelihood_ : float
    n_customers_ : int
    """

    PARAMS = ("r_", "alpha_", "s_", "beta_")

    def fit(self, X, y=None):
        """Fit on buyers' histories (``frequency``, ``recency``, ``T``); non-buyers (T NaN) are left out."""
        pen = check_penalizer(self.penalizer)  # before the data: a bad setting is named first
        x, tx, T = buyer_histories(X, "Pareto/NBD")
        ux, utx, uT, weights = distinct_histories(x, tx, T)

        def objective(theta):
            ll = pareto_nbd_log_likelihood(np.exp(theta), ux, utx, uT)
            value = -(weights * ll).sum() + pen * (theta[0] ** 2 + theta[2] ** 2)
            return value if np.isfinite(value) else FAILED

        scale = max(float(np.mean(T)), 1e-6)
        start = np.array([0.0, np.log(scale / max(float(np.mean(x)) + 1.0, 1.0)), 0.0, np.log(scale)])
        res = fit_log_params(objective, start, self.max_iter, "Pareto/NBD")
        self.r_, self.alpha_, self.s_, self.beta_ = (float(v) for v in np.exp(res.x))
        self.log_likelihood_ = float(pareto_nbd_log_likelihood(self.params_, x, tx, T).sum())
        self.n_customers_ = int(len(x))
        logger.info("Pareto/NBD on %d buyers: r=%.4g alpha=%.4g s=%.4g beta=%.4g", self.n_customers_, *self.params_)
        return self

    def log_likelihood(self, X) -> np.ndarray:
        """Per-customer log-likelihood under the fitted parameters (NaN for non-buyers)."""
        x, tx, T = rfm_arrays(X)
        return pareto_nbd_log_likelihood(self.params_, x, tx, T)

    def p_alive(self, X) -> np.ndarray:
        """P(alive at T | history)."""
        x, tx, T = rfm_arrays(X)
        _, alive, dead = _log_a0_terms(self.params_, x, tx, T)
        return np.exp(alive - np.logaddexp(alive, dead))

    def expected_purchases(self, X, t: float) -> np.ndarray:
        """E[purchases in (T, T + t] | history], ``t`` in the data's time unit."""
        t = check_horizon(t)
        r, alpha, s, beta = self.params_
        x, _, T = rfm_arrays(X)
        s_1 = s - 1.0 if abs(s - 1.0) > 1e-9 else 1e-9
        per_alive = (r + x) * (beta + T) / ((alpha + T) * s_1) * (1.0 - ((beta + T) / (beta + T + t)) ** s_1)
        return per_alive * self.p_alive(X)

    def p_no_purchase(self, X, t: float) -> np.ndarray:
        """P(no purchase in (T, T + t] | history) = L(x, t_x, T + t) / L(x, t_x, T)."""
        t = check_horizon(t)
        x, tx, T = rfm_arrays(X)
        later = pareto_nbd_log_likelihood(self.params_, x, tx, T + t)
        return np.clip(np.exp(later - pareto_nbd_log_likelihood(self.params_, x, tx, T)), 0.0, 1.0)
