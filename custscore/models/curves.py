"""A classifier's test-split curves, small enough for the manifest: ROC, precision-recall, the confusion
matrix at the chosen threshold, and cumulative gains with lift per tenth of customers.

Training stores them under ``extra["curves"]`` so the report draws them without the test rows
(a few hundred numbers rather than one probability per test customer).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

POINTS = 101  # points kept per curve
GAIN_STEPS = 10  # deciles of customers ranked by the score


def _thin(*arrays: np.ndarray, points: int = POINTS) -> list[list[float]]:
    """Keep at most ``points`` evenly spaced entries (the first and last always) of equally long arrays."""
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.array([], dtype=int)
    return [[round(float(v), 5) for v in a[keep]] for a in arrays]


def gains(y, proba, steps: int = GAIN_STEPS) -> dict:
    """Cumulative gains: the share of all positives among the top ``share`` of rows by score, and the lift."""
    y, proba = np.asarray(y).astype(int), np.asarray(proba, dtype=float)
    order = np.argsort(-proba, kind="stable")
    captured = np.cumsum(y[order]) / max(int(y.sum()), 1)
    share = np.arange(1, steps + 1) / steps
    at = np.clip(np.ceil(share * len(y)).astype(int) - 1, 0, max(len(y) - 1, 0))
    got = captured[at] if len(y) else np.zeros(steps)
    return {"share": [round(float(s), 3) for s in share], "captured": [round(float(c), 5) for c in got],
            "lift": [round(float(c / s), 4) for c, s in zip(got, share, strict=True)]}


def classifier_curves(y, proba, threshold: float | None) -> dict:
    """ROC, precision-recall, confusion matrix at ``threshold`` (0.5 when None) and gains of one split.

    Parameters
    ----------
    y : array-like of {0, 1}
    proba : array-like of float
        Probability of the positive class (calibrated, as the production model gives it).
    threshold : float or None
        The decision threshold chosen on validation data.

    Returns
    -------
    dict
        ``roc`` (fpr, tpr), ``pr`` (recall, precision), ``confusion`` (threshold, tn, fp, fn, tp),
        ``gains`` (share, captured, lift), ``n`` and ``positive_rate``.
    """
    y, proba = np.asarray(y).astype(int), np.asarray(proba, dtype=float)
    cut = 0.5 if threshold is None else float(threshold)
    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    pred = proba >= cut
    return {
        "roc": dict(zip(("fpr", "tpr"), _thin(fpr, tpr), strict=True)),
        "pr": dict(zip(("recall", "precision"), _thin(recall[::-1], precision[::-1]), strict=True)),
        "confusion": {"threshold": round(cut, 5), "tn": int((~pred & (y == 0)).sum()), "fp": int((pred & (y == 0)).sum()),
                      "fn": int((~pred & (y == 1)).sum()), "tp": int((pred & (y == 1)).sum())},
        "gains": gains(y, proba),
        "n": int(len(y)),
        "positive_rate": round(float(y.mean()), 5) if len(y) else 0.0,
    }
