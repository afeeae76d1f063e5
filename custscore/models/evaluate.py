"""Metrics, decision thresholds, cross-validation and the candidate leaderboard."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    mean_absolute_error,
    precision_recall_curve,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from custscore.errors import ConfigError

logger = logging.getLogger(__name__)

PRIMARY_METRIC = {"regression": "mae", "classification": "roc_auc"}
_LOWER_IS_BETTER = {"mae", "rmse", "brier"}
SCORING = {"mae": "neg_mean_absolute_error", "roc_auc": "roc_auc"}
_BALANCE_LABEL = {"weights": "class weights", "smote": "SMOTE"}
SMOTE_MIN_MINORITY = 60


def openmp_single_thread():
    """Context manager capping OpenMP at one thread.

    HistGradientBoosting's OpenMP barriers spin; on a busy 2-core machine that made one fit 50x slower (226 s
    instead of 4 s on 10k rows), while one thread costs little. XGBoost keeps its own ``n_jobs``.
    """
    return threadpool_limits(limits=1, user_api="openmp")


def higher_is_better(metric):
    """True when a larger value of ``metric`` is better (R², AUCs, F1...), False for errors (MAE, RMSE, Brier)."""
    return metric not in _LOWER_IS_BETTER


def _check_kind(kind):
    if kind not in PRIMARY_METRIC:
        raise ConfigError(f"kind: '{kind}' is not a supervised task kind; use one of {list(PRIMARY_METRIC)}")


def regression_metrics(y, pred):
    """MAE, RMSE and R² of predictions ``pred`` against ``y``."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    return {"mae": float(mean_absolute_error(y, pred)), "rmse": float(root_mean_squared_error(y, pred)),
            "r2": float(r2_score(y, pred))}


def classification_metrics(y, proba, threshold=0.5):
    """Ranking, calibration and thresholded metrics of positive-class probabilities ``proba``.

    Parameters
    ----------
    y : array-like of {0, 1}
    proba : array-like of float
        Probability of the positive class.
    threshold : float
        A row is predicted positive when ``proba >= threshold``.

    Returns
    -------
    dict
        roc_auc, pr_auc (average precision), accuracy, precision, recall, f1, brier.
    """
    y, proba = np.asarray(y).astype(int), np.asarray(proba, dtype=float)
    pred = (proba >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "pr_auc": float(average_precision_score(y, proba)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "brier": float(brier_score_loss(y, proba)),
    }


def reliability_curve(y, proba, bins=10):
    """Observed positive rate against mean predicted probability in equal-width bins (non-empty bins only).

    Returns
    -------
    DataFrame
        Columns bin, mean_predicted, observed_rate, count; counts sum to ``len(y)``.
    """
    y, proba = np.asarray(y, dtype=float), np.asarray(proba, dtype=float)
    idx = np.minimum((np.clip(proba, 0.0, 1.0) * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "p": proba, "y": y})
    out = frame.groupby("bin").agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size"))
    return out.reset_index()


def choose_threshold(y, proba, rule="f1", min_precision=None):
    """Pick the decision threshold on validation data by a stated rule.

    Parameters
    ----------
    y, proba : array-like
        Validation labels (0/1) and positive-class probabilities.
    rule : {"f1", "recall_at_precision"}
        ``"f1"``: the threshold with the best F1. ``"recall_at_precision"``: the highest recall whose precision
        is at least ``min_precision`` (falls back to best F1, and says so, when no threshold reaches it).
    min_precision : float, optional
        Precision floor for ``"recall_at_precision"``.

    Returns
    -------
    tuple[float, str]
        The threshold (positive when ``proba >= threshold``) and a one-line statement of the rule used.
    """
    if rule not in ("f1", "recall_at_precision"):
        raise ConfigError(f"threshold rule: '{rule}' is unknown; use 'f1' or 'recall_at_precision'")
    if rule == "recall_at_precision" and (min_precision is None or not 0 < min_precision <= 1):
        raise ConfigError(f"min_precision: {min_precision!r} must be in (0, 1] for rule 'recall_at_precision'")
    precision, recall, thresholds = precision_recall_curve(np.asarray(y).astype(int), np.asarray(proba, dtype=float))
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if rule == "recall_at_precision":
        ok = np.flatnonzero(precision >= min_precision)
        if len(ok):
            best_recall = recall[ok].max()
            i = ok[recall[ok] == best_recall].max()  # the highest threshold reaching that recall
            return float(thresholds[i]), (
                f"threshold {thresholds[i]:.3f}: highest recall ({recall[i]:.2f}) with precision >= "
                f"{min_precision:.2f} (precision {precision[i]:.2f}) on validation data")
        logger.warning("no threshold reaches precision %.2f; falling back to best F1", min_precision)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    i = int(np.argmax(f1))
    statement = f"threshold {thresholds[i]:.3f} maximises F1 ({f1[i]:.2f}) on validation data"
    if rule == "recall_at_precision":
        statement += f" (no threshold reaches precision >= {min_precision:.2f})"
    return float(thresholds[i]), statement


def cross_validate_model(pipeline, X, y, kind, cv=5, seed=0):
    """Mean and std of the primary metric over ``cv`` shuffled folds (stratified for classification).

    MAE is returned as a positive error.
    """
    _check_kind(kind)
    splitter = (StratifiedKFold if kind == "classification" else KFold)(n_splits=cv, shuffle=True, random_state=seed)
    metric = PRIMARY_METRIC[kind]
    with openmp_single_thread():
        scores = cross_val_score(pipeline, X, y, scoring=SCORING[metric], cv=splitter, n_jobs=1)
    if not higher_is_better(metric):
        scores = -scores
    return float(np.mean(scores)), float(np.std(scores))


@dataclass
class CandidateResult:
    """One leaderboard row: a fitted pipeline with its CV and validation scores and costs."""

    name: str
    pipeline: Any
    cv_mean: float
    cv_std: float
    val_metrics: dict
    fit_seconds: float
    predict_ms_per_1k: float
    threshold: float | None = None
    notes: str = ""


def _positive_proba(pipeline, X):
    return pipeline.predict_proba(X)[:, 1]


def evaluate_candidates(candidates, X_train, y_train, X_val, y_val, kind, cv=5, seed=0, on_progress=None,
                        threshold_rule="f1", min_precision=None):
    """Cross-validate, fit and validate every candidate; best first by the validation primary metric.

    Parameters
    ----------
    candidates : dict[str, Pipeline]
        Unfitted pipelines (they are cloned, not mutated).
    X_train, y_train, X_val, y_val
        Training data (CV and the final fit) and validation data (scores and, for classification, the threshold).
    kind : {"regression", "classification"}
    cv, seed : int
    on_progress : callable(name, i, n), optional
        Called before each candidate starts (i counts from 0).
    threshold_rule, min_precision
        Passed to :func:`choose_threshold`.

    Returns
    -------
    list[CandidateResult]
    """
    _check_kind(kind)
    results = []
    n = len(candidates)
    for i, (name, candidate) in enumerate(candidates.items()):
        if on_progress is not None:
            on_progress(name, i, n)
        cv_mean, cv_std = cross_validate_model(candidate, X_train, y_train, kind, cv=cv, seed=seed)
        pipeline = clone(candidate)
        with openmp_single_thread():
            start = time.perf_counter()
            pipeline.fit(X_train, y_train)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            scores = _positive_proba(pipeline, X_val) if kind == "classification" else pipeline.predict(X_val)
            predict_ms = (time.perf_counter() - start) * 1000 / max(len(X_val) / 1000, 1e-9)
        threshold, notes = None, ""
        if kind == "classification":
            threshold, notes = choose_threshold(y_val, scores, rule=threshold_rule, min_precision=min_precision)
            val_metrics = classification_metrics(y_val, scores, threshold)
        else:
            val_metrics = regression_metrics(y_val, scores)
        logger.info("%s: cv %.4f±%.4f, val %s %.4f, fit %.1fs", name, cv_mean, cv_std, PRIMARY_METRIC[kind],
                    val_metrics[PRIMARY_METRIC[kind]], fit_seconds)
        results.append(CandidateResult(name, pipeline, cv_mean, cv_std, val_metrics, fit_seconds, predict_ms,
                                       threshold, notes))
    return sort_results(results, kind)


def sort_results(results, kind):
    """Results ordered best first by the validation primary metric."""
    metric = PRIMARY_METRIC[kind]
    sign = -1.0 if higher_is_better(metric) else 1.0
    return sorted(results, key=lambda r: sign * r.val_metrics[metric])


def best(results, kind):
    """The result with the best validation primary metric."""
    if not results:
        raise ConfigError("results: no candidates were evaluated; train at least one model family")
    return sort_results(results, kind)[0]


def compare_balance(numeric, categorical, X_train, y_train, X_val, y_val, log_cols=(), seed=0,
                    families=("linear", "gboost")):
    """Compare class weights with SMOTE on validation PR-AUC and keep the better (ties keep class weights).

    PR-AUC is the yardstick because imbalance handling is about the minority class, which ROC-AUC barely sees.
    The reference families (default: linear and histogram gradient boosting, cheap and representative of the
    two ends of the zoo) are each fitted both ways; their mean PR-AUC decides.

    Returns
    -------
    dict
        choice ("weights" | "smote"), metric ("pr_auc"), weights and smote (mean PR-AUC), per_family
        ({family: {"weights": x, "smote": y}}), summary (one line, e.g. "kept class weights: PR-AUC 0.61 vs
        SMOTE 0.58").
    """
    from custscore.models.zoo import make_candidates  # zoo imports heavy estimators; keep this module light

    minority = int(np.bincount(np.asarray(y_train).astype(int), minlength=2).min())
    if minority < SMOTE_MIN_MINORITY:  # SMOTE needs 6 neighbours of its own class inside every CV training fold
        summary = (f"kept class weights: only {minority} training rows in the smaller class, too few for SMOTE "
                   f"(needs {SMOTE_MIN_MINORITY})")
        logger.info(summary)
        return {"choice": "weights", "metric": "pr_auc", "weights": float("nan"), "smote": float("nan"),
                "per_family": {}, "summary": summary}
    per_family = {name: {} for name in families}
    for balance in ("weights", "smote"):
        cands = make_candidates("classification", numeric, categorical, log_cols, seed=seed, balance=balance,
                                families=families, y=y_train)
        for name, pipe in cands.items():
            with openmp_single_thread():
                pipe.fit(X_train, y_train)
                per_family[name][balance] = float(average_precision_score(y_val, _positive_proba(pipe, X_val)))
    means = {b: float(np.mean([per_family[f][b] for f in families])) for b in ("weights", "smote")}
    choice = "weights" if means["weights"] >= means["smote"] else "smote"
    other = "smote" if choice == "weights" else "weights"
    summary = (f"kept {_BALANCE_LABEL[choice]}: PR-AUC {means[choice]:.3f} vs {_BALANCE_LABEL[other]} "
               f"{means[other]:.3f} (validation, mean over {', '.join(families)})")
    logger.info(summary)
    return {"choice": choice, "metric": "pr_auc", "weights": means["weights"], "smote": means["smote"],
            "per_family": per_family, "summary": summary}
