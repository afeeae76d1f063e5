"""Maximum likelihood on log-parameters: the one optimiser loop of the customer-base models (BG/NBD, Pareto/NBD,
Gamma-Gamma). Parameters are positive, so they are fitted as logs within +-LOG_BOUND with L-BFGS-B."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy.optimize import OptimizeResult, minimize
from threadpoolctl import threadpool_limits

from custscore.errors import InputError, ModelError

logger = logging.getLogger(__name__)

LOG_BOUND = 12.0  # |log parameter| <= 12: parameters in [6e-6, 1.6e5], far beyond any fitted value
FAILED = 1e100  # what an objective returns where the likelihood is not finite


def check_penalizer(penalizer: float) -> float:
    """The penalizer as a float; InputError unless it is a number >= 0."""
    if not np.isfinite(penalizer) or penalizer < 0:
        raise InputError(f"penalizer={penalizer!r} must be a number >= 0; pass e.g. penalizer=0.001")
    return float(penalizer)


def fit_log_params(objective: Callable, start: np.ndarray, max_iter: int, name: str,
                   jac: bool = False) -> OptimizeResult:
    """Minimise ``objective(log_params)`` (with its gradient when ``jac``); ModelError when it never gets finite."""
    with threadpool_limits(limits=1, user_api="blas"):  # BLAS threads only add wake-ups on a few parameters
        res = minimize(objective, start, jac=jac, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
                       options={"maxiter": int(max_iter)})
    if not np.isfinite(res.fun) or res.fun >= FAILED:
        raise ModelError(f"{name} fit failed ({res.message}); try penalizer=0.001")
    if not res.success:
        logger.warning("%s fit stopped early: %s", name, res.message)
    return res
