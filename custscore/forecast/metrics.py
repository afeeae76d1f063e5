"""Forecast accuracy: MASE, WAPE, sMAPE, bias and interval coverage.

``e = yhat - y``. MASE divides the mean absolute error by the in-sample mean
absolute error of the seasonal naive forecast (season ``m``; ``m = 1`` when the
history is shorter than two seasons); a flat history falls back to its scale
of 1 unit. WAPE = sum|e| / sum|y|; sMAPE = mean(2|e| / (|y| + |yhat|)) with
0/0 counted as 0; bias = sum(e) / sum(y) (positive: over-forecast).
"""

from __future__ import annotations

import numpy as np


def naive_scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (lag ``season``, or 1 on short histories)."""
    h = np.asarray(history, float)
    m = season if len(h) > 2 * season else 1
    if len(h) <= m:
        return 1.0
    scale = float(np.mean(np.abs(h[m:] - h[:-m])))
    return scale if scale > 0 else 1.0


def mase(y: np.ndarray, yhat: np.ndarray, scale: float) -> float:
    """Mean absolute scaled error."""
    return float(np.mean(np.abs(np.asarray(yhat) - np.asarray(y))) / scale)


def wape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Weighted absolute percentage error (NaN when there is no demand at all)."""
    total = float(np.sum(np.abs(y)))
    return float(np.sum(np.abs(np.asarray(yhat) - y)) / total) if total > 0 else float("nan")


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in [0, 2]."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2 * np.abs(yhat - y), den, out=np.zeros_like(den), where=den > 0)
    return float(np.mean(ratio))


def bias(y: np.ndarray, yhat: np.ndarray) -> float:
    """Sum of errors over sum of actuals."""
    total = float(np.sum(y))
    return float(np.sum(np.asarray(yhat) - y) / total) if total > 0 else float("nan")


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of actuals inside ``[lo, hi]``."""
    y = np.asarray(y)
    return float(np.mean((y >= lo) & (y <= hi)))
