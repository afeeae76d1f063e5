"""The out-of-time backtest: train at T1, score as of T2, compare with what happened after T2.

The protocol practitioners trust for churn, because a random split of one period cannot show whether a model
still works a quarter later:

1. **train** on data up to ``T1``: features from events at or before ``T1``, labels from ``(T1, T1 + H]``
   (events after ``T1 + H`` are removed before anything is fitted), with the same model comparison, calibration
   and winner rule as ``custscore train`` (nothing is registered);
2. **score** every customer who had bought by ``T2`` (``T2 >= T1 + H``) as of ``T2``, from events at or before
   ``T2`` only (:func:`features_as_of`);
3. **compare** with the outcomes in ``(T2, T2 + H]``: ROC-AUC, PR-AUC, Brier against the base rate (everyone gets
   the training churn rate) and lift in the top decile, for the winner and, on the same customers, the
   days-since-last-purchase heuristic (ranked by recency; its probabilities are the training churn rate per recency,
   an isotonic fit on the T1 data) and BG/NBD (fitted on the T1 features, its P(no purchase in H days) as is).

Profile fields are snapshots (the store keeps their current value), so a backtest on them sees today's profile at
both dates; purchase features are exact as of each date. Customers who had not bought by T2 belong to the
``first_purchase`` model and are not in this table.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from custscore.config import Settings
from custscore.errors import InputError
from custscore.models import calibration, dataset, features, labels
from custscore.models.customer_base_family import INPUTS, FrameBetaGeoChurn
from custscore.models.feature_filter import drop_uninformative
from custscore.store.base import Store

log = logging.getLogger(__name__)
HEURISTIC = "days since last purchase"
BGNBD = "BG/NBD (classic model)"
BASE_RATE = "base rate (training churn rate)"


@dataclass
class BacktestResult:
    """The out-of-time table and what it was computed on."""

    train_cutoff: dt.datetime
    as_of: dt.datetime
    horizon_days: int
    table: pd.DataFrame  # model, roc_auc, pr_auc, brier, brier_vs_base, lift_top_decile
    customers: int
    churn_rate: float
    winner: str
    figure: Path | None = None
    notes: list[str] = field(default_factory=list)
    fitted: Any = None  # train.Fitted at T1 (for score_as_of)
    train_data: Any = None  # the T1 churn TaskData


def default_dates(first_event: dt.datetime, last_event: dt.datetime,
                  horizon_days: int) -> tuple[dt.datetime, dt.datetime]:
    """(T1, T2) = (last event - 2H, last event - H): the latest pair whose outcome windows are fully observed."""
    t2 = pd.Timestamp(last_event) - pd.Timedelta(days=horizon_days)
    return (t2 - pd.Timedelta(days=horizon_days)).to_pydatetime(), t2.to_pydatetime()


def check_dates(t1: dt.datetime, t2: dt.datetime, horizon_days: int, first_event: dt.datetime,
                last_event: dt.datetime) -> None:
    """Refuse dates that cannot give an honest backtest, in one line naming the value and the fix."""
    if horizon_days < 1:
        raise InputError(f"horizon={horizon_days} must be at least 1 day; pass e.g. --horizon 90")
    T1, T2, H = pd.Timestamp(t1), pd.Timestamp(t2), pd.Timedelta(days=horizon_days)
    if pd.Timestamp(first_event) >= T1:
        raise InputError(f"train-cutoff={T1.date()} is not after the first event ({pd.Timestamp(first_event).date()}); "
                         "pass a later --train-cutoff")
    if T2 < T1 + H:
        raise InputError(f"as-of={T2.date()} is before train-cutoff + horizon ({(T1 + H).date()}): the training labels "
                         f"would overlap the scoring period; pass --as-of {(T1 + H).date()} or later")
    if pd.Timestamp(last_event) < T2 + H:
        latest = (pd.Timestamp(last_event) - H).date()
        raise InputError(f"as-of={T2.date()} needs outcomes up to {(T2 + H).date()} but the last event is "
                         f"{pd.Timestamp(last_event).date()}; pass --as-of {latest} or earlier, or a shorter --horizon")


def features_as_of(corpus: dataset.Corpus, as_of: dt.datetime) -> pd.DataFrame:
    """Every customer's features as of ``as_of`` from the events at or before it (later events are never read)."""
    events = corpus.events[corpus.events["ts"] <= pd.Timestamp(as_of)]
    return features.customer_features(corpus.profiles, events, as_of, corpus.categories)


def truncated(corpus: dataset.Corpus, until: dt.datetime) -> dataset.Corpus:
    """The corpus as it was at ``until``: events after it removed (the data is then observed up to ``until``)."""
    events = corpus.events[corpus.events["ts"] <= pd.Timestamp(until)]
    return replace(corpus, events=events, last_event=min(pd.Timestamp(until), pd.Timestamp(corpus.last_event))
                   .to_pydatetime())


def lift_top_decile(y, proba) -> float:
    """Churn rate among the 10% highest scores over the overall churn rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(proba, dtype=float)
    n = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-p, kind="stable")[:n]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def auc_difference(y, a, b, draws: int = 300, seed: int = 0) -> tuple[float, float, float]:
    """ROC-AUC of ``a`` minus that of ``b`` on the same rows, with a 95% paired bootstrap interval."""
    y, a, b = np.asarray(y, dtype=int), np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(draws):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5]) if diffs else (float("nan"), float("nan"))
    return float(roc_auc_score(y, a) - roc_auc_score(y, b)), float(lo), float(hi)


def _metrics(name: str, y, proba, rank=None, base_brier: float | None = None) -> dict:
    rank = proba if rank is None else rank
    brier = float(brier_score_loss(y, proba))
    return {"model": name, "roc_auc": float(roc_auc_score(y, rank)), "pr_auc": float(average_precision_score(y, rank)),
            "brier": brier, "brier_vs_base": brier / base_brier if base_brier else 1.0,
            "lift_top_decile": lift_top_decile(y, rank)}


@dataclass
class Scored:
    """The three predictions for the customers scored as of T2."""

    X: pd.DataFrame
    winner: pd.Series
    heuristic: pd.Series
    heuristic_rank: pd.Series
    bgnbd: pd.Series


def score_as_of(fitted, train_data: dataset.TaskData, corpus: dataset.Corpus, as_of: dt.datetime) -> Scored:
    """Score, as of ``as_of``, every customer who had bought by then: winner, recency heuristic and BG/NBD.

    Parameters
    ----------
    fitted : train.Fitted
        The churn comparison fitted on the T1 data (``fitted.best.pipeline`` is calibrated).
    train_data : TaskData
        The T1 churn data (the heuristic's calibration and BG/NBD are fitted on it).
    corpus : Corpus
        All stored data; only events at or before ``as_of`` are read.
    """
    X_all = features_as_of(corpus, as_of)
    signed = (corpus.profiles["signup_date"] <= pd.Timestamp(as_of)).reindex(X_all.index).fillna(False)
    X = X_all[signed.to_numpy() & (X_all["orders_total"] > 0).to_numpy()]
    cols = list(train_data.X.columns)
    winner = pd.Series(fitted.best.pipeline.predict_proba(X[cols])[:, 1], index=X.index)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip", increasing=True)
    iso.fit(train_data.X["recency_days"].to_numpy(float), train_data.y.to_numpy(int))
    recency = X["recency_days"].to_numpy(float)
    heuristic = pd.Series(iso.predict(recency), index=X.index)
    bg = FrameBetaGeoChurn(horizon_days=float(train_data.horizon_days)).fit(train_data.X[INPUTS], train_data.y)
    bgnbd = pd.Series(bg.predict_proba(X[INPUTS])[:, 1], index=X.index)
    return Scored(X, winner, heuristic, pd.Series(recency, index=X.index), bgnbd)


def run_backtest(store: Store, settings: Settings, train_cutoff: dt.datetime | None = None,
                 as_of: dt.datetime | None = None, horizon_days: int = labels.DEFAULT_HORIZON_DAYS, options=None,
                 progress=None) -> BacktestResult:
    """Train at ``train_cutoff``, score as of ``as_of``, compare with the outcomes in ``(as_of, as_of + horizon]``.

    Parameters
    ----------
    store, settings
        The data (read once) and where the figure goes (``$CUSTSCORE_HOME/reports``).
    train_cutoff, as_of : datetime, optional
        T1 and T2; defaults from the events' range (:func:`default_dates`).
    horizon_days : int
        H, for the training labels and the outcomes.
    options : train.TrainOptions, optional
        Families, CV folds, seed... (cutoff and horizon are set from the arguments).
    progress : callable(what, done, total), optional

    Raises
    ------
    InputError
        Dates that cannot give an honest backtest (see :func:`check_dates`), too little data.
    """
    from custscore.models.train import TrainOptions, fit_supervised

    corpus = dataset.read_corpus(store)
    d1, d2 = default_dates(corpus.first_event, corpus.last_event, horizon_days)
    t1, t2 = train_cutoff or d1, as_of or d2
    if as_of is not None and train_cutoff is None:
        t1 = (pd.Timestamp(t2) - pd.Timedelta(days=horizon_days)).to_pydatetime()
    check_dates(t1, t2, horizon_days, corpus.first_event, corpus.last_event)
    options = replace(options or TrainOptions(), cutoff=t1, horizon_days=horizon_days, promote=False)
    past = truncated(corpus, pd.Timestamp(t1) + pd.Timedelta(days=horizon_days))
    data = drop_uninformative(dataset.churn_data(past, t1, horizon_days))
    data.categories = list(corpus.categories)
    fitted = fit_supervised(data, options, progress)
    scored = score_as_of(fitted, data, corpus, t2)
    y = labels.churn_labels(corpus.profiles, corpus.events, t2, horizon_days).reindex(scored.X.index)
    if y.isna().any() or y.nunique() < 2:
        raise InputError(f"as-of={pd.Timestamp(t2).date()} leaves {len(scored.X)} buying customers with "
                         f"{y.nunique()} outcome(s) in the next {horizon_days} days; pick another --as-of")
    y = y.astype(int)
    base = float(data.y.mean())
    base_brier = float(brier_score_loss(y, np.full(len(y), base)))
    rows = [_metrics(f"winner: {fitted.best.name}", y, scored.winner, base_brier=base_brier),
            _metrics(BGNBD, y, scored.bgnbd, base_brier=base_brier),
            _metrics(HEURISTIC, y, scored.heuristic, rank=scored.heuristic_rank, base_brier=base_brier)]
    rows.append({"model": BASE_RATE, "roc_auc": 0.5, "pr_auc": float(y.mean()), "brier": base_brier,
                 "brier_vs_base": 1.0, "lift_top_decile": 1.0})
    table = pd.DataFrame(rows)
    figure = calibration.reliability_figure(
        y, {"winner": scored.winner, "BG/NBD": scored.bgnbd, "recency": scored.heuristic},
        Path(settings.home) / "reports" / f"backtest_{pd.Timestamp(t1):%Y%m%d}_{pd.Timestamp(t2):%Y%m%d}.png",
        title=f"backtest: trained {pd.Timestamp(t1):%Y-%m-%d}, scored {pd.Timestamp(t2):%Y-%m-%d}")
    diff, lo, hi = auc_difference(y, scored.winner, scored.bgnbd, seed=options.seed)
    verdict = "beats" if lo > 0 else "trails" if hi < 0 else "matches (the interval includes 0)"
    notes = [*fitted.notes,
             f"winner minus BG/NBD ROC-AUC: {diff:+.4f} (95% paired bootstrap {lo:+.4f} to {hi:+.4f}): the winner "
             f"{verdict}",
             f"scored {len(y):,} customers who had bought by {pd.Timestamp(t2):%Y-%m-%d}; {y.mean():.1%} made no "
             f"purchase in the next {horizon_days} days (training churn rate {base:.1%})"]
    log.info("backtest %s -> %s: winner ROC-AUC %.4f, BG/NBD %.4f, recency %.4f", pd.Timestamp(t1).date(),
             pd.Timestamp(t2).date(), rows[0]["roc_auc"], rows[1]["roc_auc"], rows[2]["roc_auc"])
    return BacktestResult(t1, t2, horizon_days, table, len(y), float(y.mean()), fitted.best.name, figure, notes,
                          fitted, data)
