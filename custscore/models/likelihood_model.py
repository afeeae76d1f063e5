"""What the customer-base models fitted by maximum likelihood share (BG/NBD, Pareto/NBD, Gamma-Gamma).

:class:`LikelihoodModel` holds their constructor arguments (``penalizer``, ``max_iter``) and hands back the fitted
parameters; :func:`buyer_histories` gives BG/NBD and Pareto/NBD the buyers they fit on, identical histories
counted once; :func:`check_horizon` checks a prediction horizon. The optimiser loop itself is
:mod:`custscore.models.log_params`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from custscore.errors import InputError, ModelError
from custscore.models.rfm_summary import rfm_arrays


class LikelihoodModel(BaseEstimator):
    """Base of the maximum-likelihood customer-base models; a subclass names its fitted attributes in ``PARAMS``.

    Parameters
    ----------
    penalizer : float
        L2 penalty on the log of the shape parameters (each model says which), added to the mean negative
        log-likelihood. 0 is plain maximum likelihood.
    max_iter : int
        L-BFGS-B iteration limit.
    """

    PARAMS: tuple[str, ...] = ()

    def __init__(self, penalizer: float = 0.0, max_iter: int = 500):
        self.penalizer = penalizer
        self.max_iter = max_iter

    @property
    def params_(self) -> tuple[float, ...]:
        """The fitted parameters, in the order of ``PARAMS``; ModelError before ``fit``."""
        if not hasattr(self, self.PARAMS[0]):
            raise ModelError(f"{type(self).__name__} is not fitted; call fit(summary) first")
        return tuple(getattr(self, name) for name in self.PARAMS)


def check_horizon(t) -> float:
    """The horizon as a float; InputError unless it is a number of periods >= 0."""
    t = float(t)
    if not np.isfinite(t) or t < 0:
        raise InputError(f"horizon t={t!r} must be a number of periods >= 0; pass e.g. 90 (days)")
    return t


def buyer_histories(X, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``frequency``, ``recency``, ``T`` of the buyers in ``X`` (rows with ``T`` NaN left out).

    InputError, naming ``model``, unless there are at least 2 buyers and one of them has ``T > 0``.
    """
    x, tx, T = rfm_arrays(X)
    keep = ~np.isnan(T)
    x, tx, T = x[keep], tx[keep], T[keep]
    if len(x) < 2 or not (T > 0).any():
        raise InputError(f"{model} needs at least 2 buyers with T > 0; got {len(x)} buyers")
    return x, tx, T


def distinct_histories(x, tx, T) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct histories ``(x, t_x, T)`` in lexicographic order and the share of buyers behind each.

    Many buyers share a history (one-time buyers of the same age), so a likelihood summed over the distinct
    ones, weighted, has the same optimum for fewer evaluations.
    """
    order = np.lexsort((T, tx, x))
    hist = np.column_stack([x, tx, T])[order]
    first = np.r_[True, (np.diff(hist, axis=0) != 0).any(axis=1)]
    counts = np.bincount(np.cumsum(first) - 1)
    weights = counts / counts.sum()
    return hist[first, 0], hist[first, 1], hist[first, 2], weights
