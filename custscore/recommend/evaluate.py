"""The recommendation leaderboard: every ranker on the same per-customer temporal holdout.

Evaluated customers (those with a future, see :func:`~custscore.recommend.interactions.temporal_split`)
are split at random into validation and test halves; every model learns from the past
of *all* customers only. A model's validation NDCG@10 is also computed on
``folds`` disjoint groups of validation customers, whose spread gives the standard
error of the one-standard-error rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from custscore.recommend import metrics
from custscore.recommend.interactions import Interactions, Split, relevant_sets

log = logging.getLogger(__name__)

PRIMARY = f"ndcg@{metrics.K}"
# Oracle: (customer row, bought product columns) -> scores over the product columns, or None if unknown.
OracleFn = Callable[[int, np.ndarray], np.ndarray | None]


@dataclass
class RankerResult:
    """One ranker's outcome (the fields :func:`custscore.models.train.pick_winner` reads)."""

    name: str
    model: object
    cv_mean: float
    cv_std: float
    val_metrics: dict
    test_metrics: dict
    fit_seconds: float
    recommend_ms_per_1k: float
    notes: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Holdout:
    """What every ranker is fitted and judged on."""

    inter: Interactions
    split: Split
    X: sp.csr_matrix  # weighted past, all customers
    X_recent: sp.csr_matrix  # past within the popularity window
    segments: np.ndarray  # per customer row
    repeatable: np.ndarray  # per product column
    validation: np.ndarray  # evaluated rows
    test: np.ndarray
    relevant: dict[int, set[int]]
    popularity: np.ndarray  # share of training customers who bought each product


def make_holdout(inter: Interactions, split: Split, segments: np.ndarray, repeatable_categories: Sequence[str],
                 seed: int = 0, window_days: int = 90) -> Holdout:
    """Build the training matrices and the validation/test customer halves."""
    past = split.past
    as_of = past["ts"].max()
    X = inter.matrix(past, as_of=as_of)
    recent = past[past["ts"] >= as_of - pd.Timedelta(days=window_days)]
    X_recent = inter.matrix(recent, half_life_days=None, as_of=as_of)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(split.evaluated)
    half = len(rows) // 2
    repeatable = np.isin(inter.item_category, list(repeatable_categories))
    bought = (X > 0).astype(np.float32)
    popularity = np.asarray(bought.sum(axis=0)).ravel() / max(X.shape[0], 1)
    return Holdout(inter, split, X, X_recent, np.asarray(segments, dtype=str), repeatable, np.sort(rows[:half]),
                   np.sort(rows[half:]), relevant_sets(split.future), popularity)


def recommend_rows(model, hold: Holdout, rows: np.ndarray, n: int = metrics.K) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` product columns for training rows ``rows`` (their past is the history)."""
    H = hold.X[rows]
    scores = model.score(H, hold.segments[rows])
    return metrics.top_n(scores, n, metrics.excluded_mask(H, hold.repeatable))


def _judge(recs: np.ndarray, hold: Holdout, rows: np.ndarray, folds: int) -> tuple[dict, float, float]:
    relevant = [hold.relevant.get(int(r), set()) for r in rows]
    overall = metrics.summary(recs, relevant, hold.popularity)
    per = metrics.per_customer(recs, relevant)["ndcg"]
    groups = np.array_split(np.arange(len(rows)), folds)
    fold_means = [float(per[g].mean()) for g in groups if len(g)]
    return overall, float(np.mean(fold_means)), float(np.std(fold_means))


def evaluate_rankers(candidates: dict[str, object], hold: Holdout, folds: int = 5,
                     on_progress: Callable[[str, int, int], None] | None = None) -> list[RankerResult]:
    """Fit every candidate on the past and score it on validation and test customers, best first."""
    results = []
    for step, (name, model) in enumerate(candidates.items()):
        if on_progress:
            on_progress(f"recommend: {name}", step, len(candidates))  # one bar for the task, the family named
        started = time.perf_counter()
        X = hold.X_recent if name.startswith("popularity") else hold.X
        model.fit(X, hold.segments)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        val_recs, _ = recommend_rows(model, hold, hold.validation)
        ms = (time.perf_counter() - started) * 1000.0 / max(len(hold.validation), 1) * 1000.0
        test_recs, _ = recommend_rows(model, hold, hold.test)
        val, cv_mean, cv_std = _judge(val_recs, hold, hold.validation, folds)
        test, _, _ = _judge(test_recs, hold, hold.test, folds)
        log.info("%s: validation %s %.4f (folds %.4f +/- %.4f), fit %.1fs", name, PRIMARY, val[PRIMARY], cv_mean,
                 cv_std, fit_s)
        results.append(RankerResult(name, model, cv_mean, cv_std, val, test, fit_s, ms))
    if on_progress:
        on_progress("recommend", len(candidates), len(candidates))
    return sorted(results, key=lambda r: -r.val_metrics[PRIMARY])


def oracle_result(oracle: OracleFn, hold: Holdout, folds: int = 5) -> RankerResult | None:
    """The oracle row: each customer's true next-purchase probabilities, ranked with the same buy-again rule."""
    out = {}
    for part, rows in (("val", hold.validation), ("test", hold.test)):
        scores = np.zeros((len(rows), hold.X.shape[1]))
        known = np.zeros(len(rows), dtype=bool)
        for j, r in enumerate(rows.tolist()):
            s = oracle(int(r), hold.X[r].indices)
            if s is not None:
                scores[j], known[j] = s, True
        if known.mean() < 0.5:
            return None
        recs, _ = metrics.top_n(scores, metrics.K, metrics.excluded_mask(hold.X[rows], hold.repeatable))
        recs[~known] = -1
        out[part] = _judge(recs, hold, rows, folds)
    (val, cv_mean, cv_std), (test, _, _) = out["val"], out["test"]
    return RankerResult("oracle", None, cv_mean, cv_std, val, test, 0.0, float("nan"),
                        notes="true affinities from _truth (simulated data only; not a candidate)")


def leaderboard(results: Sequence[RankerResult], notes: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per model: validation NDCG@10 (and its fold spread), test metrics, coverage, popularity, cost."""
    rows = []
    for r in results:
        row = {"model": r.name, f"val_{PRIMARY}": r.val_metrics[PRIMARY], "cv_std": r.cv_std}
        row.update({f"test_{k}": v for k, v in r.test_metrics.items()})
        row.update({"fit_s": r.fit_seconds, "recommend_ms_1k": r.recommend_ms_per_1k,
                    "tradeoff": (notes or {}).get(r.name.split(" ")[0], r.notes)})
        rows.append(row)
    return pd.DataFrame(rows)
