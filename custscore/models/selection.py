"""Feature selection compared honestly: no selection vs SelectKBest vs RFE, kept only if it validates better."""

from __future__ import annotations

import logging
import warnings

from sklearn.feature_selection import RFE, SelectKBest, f_classif, f_regression
from sklearn.linear_model import LogisticRegression, Ridge

from custscore.errors import ConfigError
from custscore.models.evaluate import (
    PRIMARY_METRIC,
    classification_metrics,
    higher_is_better,
    openmp_single_thread,
    regression_metrics,
)
from custscore.models.zoo import make_candidates, make_preprocessor, with_step

logger = logging.getLogger(__name__)


def make_selector(method, kind, k, seed=0):
    """An unfitted ``select`` step: ``"kbest"`` (univariate F-test) or ``"rfe"`` (recursive elimination, linear)."""
    if method == "kbest":
        return SelectKBest(f_classif if kind == "classification" else f_regression, k=k)
    if method == "rfe":
        base = LogisticRegression(max_iter=2000) if kind == "classification" else Ridge(alpha=1.0)
        # step=0.1 drops 10% of the features per round: a handful of refits instead of one per feature.
        return RFE(base, n_features_to_select=k, step=0.1)
    raise ConfigError(f"selection method: '{method}' is unknown; use 'kbest' or 'rfe'")


def _val_score(pipeline, X_train, y_train, X_val, y_val, kind):
    with openmp_single_thread():
        pipeline.fit(X_train, y_train)
        if kind == "classification":
            return classification_metrics(y_val, pipeline.predict_proba(X_val)[:, 1])[PRIMARY_METRIC[kind]]
        return regression_metrics(y_val, pipeline.predict(X_val))[PRIMARY_METRIC[kind]]


def compare_selection(numeric, categorical, X_train, y_train, X_val, y_val, kind, seed=0, log_cols=(),
                      reference="linear", k=None, balance=None):
    """Score no selection, SelectKBest and RFE with one reference model on the validation primary metric.

    Parameters
    ----------
    numeric, categorical, log_cols : sequence of str
        Feature lists for :func:`custscore.models.zoo.make_preprocessor`.
    X_train, y_train, X_val, y_val
        Selection is fitted on training rows only (inside the Pipeline) and judged on validation rows.
    kind : {"regression", "classification"}
    seed : int
    reference : str
        Zoo family used to judge (default "linear": cheap, and the family most sensitive to noise features).
    k : int, optional
        Features to keep (after one-hot encoding); default half of them, at least 5.
    balance : {None, "weights", "smote"}
        Passed to the zoo so the reference matches the task's imbalance handling.

    Returns
    -------
    dict
        metric, scores ({"none", "kbest", "rfe"} -> value), n_features, k, choice, kept (bool), selector
        (unfitted step to insert as ``select``, or None), summary (one line).
    """
    if kind not in PRIMARY_METRIC:
        raise ConfigError(f"kind: '{kind}' is not a supervised task kind; use one of {list(PRIMARY_METRIC)}")
    metric = PRIMARY_METRIC[kind]
    n_features = make_preprocessor(numeric, categorical, log_cols).fit(X_train, y_train).transform(X_train[:1]).shape[1]
    k = int(k) if k is not None else max(5, n_features // 2)
    base = make_candidates(kind, numeric, categorical, log_cols, seed=seed, balance=balance, families=[reference],
                           y=y_train)[reference]
    scores = {"none": float(_val_score(base, X_train, y_train, X_val, y_val, kind))}
    if k >= n_features:
        summary = f"no selection: only {n_features} features, nothing to drop at k={k}"
        logger.info(summary)
        return {"metric": metric, "scores": scores, "n_features": n_features, "k": k, "choice": "none",
                "kept": False, "selector": None, "summary": summary}
    with warnings.catch_warnings():
        # Constant one-hot columns make the F-test divide by zero; SelectKBest ranks them last, which is right.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Features .* are constant")
        for method in ("kbest", "rfe"):
            pipe = with_step(base, "select", make_selector(method, kind, k, seed))
            scores[method] = float(_val_score(pipe, X_train, y_train, X_val, y_val, kind))
    sign = 1.0 if higher_is_better(metric) else -1.0
    best_method = max(("kbest", "rfe"), key=lambda m: sign * scores[m])
    kept = sign * scores[best_method] > sign * scores["none"]
    choice = best_method if kept else "none"
    detail = ", ".join(f"{m} {v:.4f}" for m, v in scores.items())
    summary = (f"{'kept ' + best_method if kept else 'no selection kept'} (k={k} of {n_features}; "
               f"validation {metric} with {reference}: {detail})")
    logger.info(summary)
    return {"metric": metric, "scores": scores, "n_features": n_features, "k": k, "choice": choice, "kept": kept,
            "selector": make_selector(choice, kind, k, seed) if kept else None, "summary": summary}

