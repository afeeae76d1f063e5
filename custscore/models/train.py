"""Train, compare, explain and register the models of each task (flow 3 in ARCHITECTURE.md).

Per supervised task: a stratified train / validation / test split (60/20/20);
K-fold CV and validation scores for every family; the winner is picked by the
validation metric only; the test set is scored once, for the report. Churn
compares class weights with SMOTE and picks its threshold on validation data.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from custscore.config import Settings
from custscore.errors import InputError
from custscore.models import (
    calibration,
    customer_base_family,
    dataset,
    evaluate,
    feature_catalogue,
    population,
    registry,
    zoo,
)
from custscore.models.curves import classifier_curves
from custscore.models.drift import NEW, reference_profile
from custscore.models.feature_filter import drop_uninformative
from custscore.models.oracle import oracle_rows
from custscore.models.selection import compare_selection
from custscore.models.task_result import (  # noqa: F401 - BACKGROUND_ROWS, EXPLAIN_ROWS, TaskResult: importable here too
    BACKGROUND_ROWS,
    EXPLAIN_ROWS,
    TaskResult,
    explain_sample,
    register,
)
from custscore.store.base import Store

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class TrainOptions:
    """What ``custscore train`` was asked to do."""

    tasks: tuple[str, ...] = dataset.TASKS
    target: str | None = None
    kind: str | None = None
    cv: int = 5
    tune: bool = False
    tune_budget_s: float = 120.0
    cutoff: dt.datetime | None = None
    horizon_days: int = 90
    seed: int = 0
    promote: bool = True
    families: tuple[str, ...] | None = None
    threshold_rule: str = "f1"
    min_precision: float | None = None

    def validate(self) -> None:
        """One-line errors for bad options."""
        if self.cv < 2:
            raise InputError(f"cv={self.cv} must be at least 2 folds; pass e.g. --cv 5")
        bad = [t for t in self.tasks if t not in dataset.TASKS]
        if bad and not self.target:
            raise InputError(f"task={bad[0]!r} is not known; use one of {', '.join(dataset.TASKS)} or all")
        if self.threshold_rule == "recall_at_precision" and not self.min_precision:
            raise InputError("threshold rule recall_at_precision needs --min-precision, e.g. 0.5")


def _split(data: dataset.TaskData, seed: int):
    strat = data.y if data.kind == "classification" else None
    idx = np.asarray(data.X.index, dtype=object)
    tr, rest = train_test_split(idx, test_size=0.4, random_state=seed, stratify=strat)
    strat_rest = data.y.loc[rest] if strat is not None else None
    va, te = train_test_split(rest, test_size=0.5, random_state=seed, stratify=strat_rest)
    return tr, va, te


def _artifact_kb(pipeline) -> float:
    try:
        return len(pickle.dumps(pipeline)) / 1024.0
    except Exception:  # noqa: BLE001 - size is informative only
        return float("nan")


def _predict(pipeline, X: pd.DataFrame, kind: str) -> np.ndarray:
    return pipeline.predict_proba(X)[:, 1] if kind == "classification" else pipeline.predict(X)


def _test_metrics(pipeline, X, y, kind, threshold) -> dict:
    out = _predict(pipeline, X, kind)
    return evaluate.classification_metrics(y, out, threshold) if kind == "classification" else evaluate.regression_metrics(y, out)


def _leaderboard(results, kind, X_te, y_te) -> pd.DataFrame:
    metric = evaluate.PRIMARY_METRIC[kind]
    rows = []
    for r in results:
        test = _test_metrics(r.pipeline, X_te, y_te, kind, r.threshold)
        rows.append({"model": r.name, "cv_mean": r.cv_mean, "cv_std": r.cv_std,
                     f"val_{metric}": r.val_metrics[metric], f"test_{metric}": test[metric],
                     **({"val_pr_auc": r.val_metrics["pr_auc"], "test_f1": test["f1"], "test_brier": test["brier"]}
                        if kind == "classification" else {"val_rmse": r.val_metrics["rmse"], "test_r2": test["r2"]}),
                     "fit_s": r.fit_seconds, "predict_ms_1k": r.predict_ms_per_1k, "size_kb": _artifact_kb(r.pipeline),
                     "tradeoff": zoo.FAMILY_NOTES.get(r.name.split(" ")[0], r.notes)})
    return pd.DataFrame(rows)


@dataclass
class Fitted:
    """Every candidate fitted and validated on one task (churn: calibrated), the winner, and the split used."""

    best: evaluate.CandidateResult
    results: list
    notes: list[str]
    split: tuple
    calibration: dict = field(default_factory=dict)


def fit_supervised(data: dataset.TaskData, options: TrainOptions, progress: Progress | None = None) -> Fitted:
    """Compare every family on one supervised task and pick the winner (nothing is registered).

    Classification: every candidate is then calibrated on the validation split and its threshold chosen on the
    calibrated scale (:mod:`custscore.models.calibration`); the test split is only measured.
    """
    kind, seed = data.kind, options.seed
    tr, va, te = _split(data, seed)
    X_tr, X_va, X_te = data.X.loc[tr], data.X.loc[va], data.X.loc[te]
    y_tr, y_va, y_te = data.y.loc[tr], data.y.loc[va], data.y.loc[te]
    notes = list(data.notes)
    logs = [f for f in feature_catalogue.log_features() if f in data.numeric]
    balance = None
    if kind == "classification":
        choice = evaluate.compare_balance(data.numeric, data.categorical, X_tr, y_tr, X_va, y_va, log_cols=logs, seed=seed)
        balance = choice["choice"]
        notes.append(choice["summary"])
    selection = compare_selection(data.numeric, data.categorical, X_tr, y_tr, X_va, y_va, kind, seed=seed,
                                  log_cols=logs, balance=balance)
    notes.append(f"feature selection: {selection['summary']}")
    candidates = zoo.make_candidates(kind, data.numeric, data.categorical, logs, seed=seed, balance=balance,
                                     families=options.families, y=y_tr, customer_base_horizon=data.horizon_days)
    if selection["kept"]:
        candidates = {n: p if n == customer_base_family.FAMILY
                      else zoo.with_step(p, "select", clone(selection["selector"])) for n, p in candidates.items()}

    def step(name, i, n):
        if progress:
            progress(f"{data.task}: {name}", i, n)

    results = evaluate.evaluate_candidates(candidates, X_tr, y_tr, X_va, y_va, kind, cv=options.cv, seed=seed,
                                     on_progress=step, threshold_rule=options.threshold_rule,
                                     min_precision=options.min_precision)
    if options.tune:
        results = _tune(results, data, X_tr, y_tr, X_va, y_va, options, notes, step)
    best, pick_note = pick_winner(results, kind, options.cv)
    notes.append(pick_note)
    calibrated = {}
    if kind == "classification":
        calibrated = calibration.calibrate_results(results, X_va, y_va, X_te, y_te, options.threshold_rule,
                                                   options.min_precision, seed)
        m = calibrated[best.name]
        how = (f"calibrated on validation data with {m['method']}" if m["method"] != calibration.IDENTITY else
               "left uncalibrated (neither isotonic nor sigmoid beat it on held-out validation folds)")
        notes.append(f"{how}: test Brier {m['brier_raw']:.4f} -> {m['brier']:.4f}, "
                     f"ECE {m['ece_raw']:.4f} -> {m['ece']:.4f}")
    return Fitted(best, results, notes, (tr, va, te), calibrated)


def train_supervised(store: Store, settings: Settings, data: dataset.TaskData, options: TrainOptions,
                     progress: Progress | None = None) -> TaskResult:
    """Compare every family on one supervised task, explain and register the winner."""
    kind, seed = data.kind, options.seed
    fitted = fit_supervised(data, options, progress)
    best, results, notes = fitted.best, fitted.results, fitted.notes
    tr, va, te = fitted.split
    X_tr, X_te = data.X.loc[tr], data.X.loc[te]
    y_tr, y_te = data.y.loc[tr], data.y.loc[te]
    board = _leaderboard(results, kind, X_te, y_te)
    if fitted.calibration:
        board = calibration.leaderboard_columns(board, fitted.calibration)
    board = pd.concat([board, pd.DataFrame(oracle_rows(data, X_tr.index, y_tr, X_te.index, y_te))], ignore_index=True)
    test = _test_metrics(best.pipeline, X_te, y_te, kind, best.threshold)
    if best.threshold is not None:
        notes.append(f"decision threshold {best.threshold:.3f} chosen on validation data: {best.notes}")
    out_dir = settings.home / "reports" / "shap"
    reliability_png = None
    if kind == "classification":
        curve = evaluate.reliability_curve(y_te, _predict(best.pipeline, X_te, kind))
        curves = classifier_curves(y_te, _predict(best.pipeline, X_te, kind), best.threshold)  # for the report
        notes.append(f"calibration on test: Brier {test['brier']:.4f}; reliability curve stored in the manifest")
        raw = calibration.base_pipeline(best.pipeline).predict_proba(X_te)[:, 1]
        reliability_png = calibration.reliability_figure(
            y_te, {"before calibration": raw, "after calibration": _predict(best.pipeline, X_te, kind)},
            out_dir / f"{data.task}_reliability.png", title=f"{data.task}: {best.name}, test split")
    else:
        curve = curves = None
    background = X_tr.sample(min(len(X_tr), BACKGROUND_ROWS), random_state=seed)
    sample = X_te.sample(min(len(X_te), EXPLAIN_ROWS), random_state=seed)
    explained = explain_sample(best.pipeline, kind, data.task, background, sample, out_dir, seed)
    figures = [*explained.figures, *([reliability_png] if reliability_png is not None else [])]
    # drift reference: the population as the scorer sees it when the task provides one (data.reference_X)
    ref_X = X_tr if data.reference_X is None or not len(data.reference_X) else data.reference_X[list(X_tr.columns)]
    predictions = {"churn_probability" if data.task == "churn" else data.task: _predict(best.pipeline, ref_X, kind)}
    extra = {"winner": best.name, "leaderboard": board.to_dict("records"), "notes": notes,
             "test_metrics": test, "split": {"train": len(tr), "validation": len(va), "test": len(te)},
             "reliability": curve.to_dict("records") if curve is not None else None, "curves": curves,
             "classes": data.classes,
             "horizon_days": options.horizon_days if data.task == "churn" else None,  # the stale-data warning
             "calibration": best.pipeline.calibrator.to_dict()
             if isinstance(best.pipeline, calibration.CalibratedPipeline) else None}
    version, figures = register(
        store, settings, data, calibration.base_pipeline(best.pipeline), explained=explained, background=background,
        reference=reference_profile(ref_X, predictions=predictions,
                                    population=NEW if data.task == population.TASK else None),
        metrics={**{f"val_{k}": v for k, v in best.val_metrics.items()}, **{f"test_{k}": v for k, v in test.items()},
                 "cv_mean": best.cv_mean, "cv_std": best.cv_std},
        threshold=best.threshold, fingerprint=registry.training_fingerprint(data.X, data.y), extra=extra,
        promote=options.promote, figures=figures)
    log.info("%s: %s won (%s), registered as %s", data.task, best.name, evaluate.PRIMARY_METRIC[kind], version)
    return TaskResult(data.task, kind, board, best.name, version, test, notes, figures, best.threshold)


# Cheapest to serve first, by SHAP seconds per 1000 rows measured in the scorer: linear 0.01, tree 0.02,
# gboost 0.5, xgboost 0.2-1.5, mlp 2.2 (sampled), forest 3 (exact but 100 deep trees), stacking/voting 1-40 (sampled).
SERVING_ORDER = ("linear", "tree", "gboost", "xgboost", "mlp", "forest", "stacking", "voting")


def pick_winner(results, kind: str, cv: int, metric: str | None = None, order: tuple[str, ...] = SERVING_ORDER):
    """The best validation metric, where models within one CV standard error of it count as tied and the tie
    goes to the model cheapest to serve and explain (Breiman's one-standard-error rule, cost as simplicity).

    ``metric`` overrides the kind's primary metric and ``order`` the serving-cost order (cheapest first) for
    other model families, e.g. the recommenders (validation NDCG@10)."""
    metric = metric or evaluate.PRIMARY_METRIC[kind]
    sign = 1 if evaluate.higher_is_better(metric) else -1
    top = evaluate.best(results, kind) if metric == evaluate.PRIMARY_METRIC.get(kind) else \
        min(results, key=lambda r: -sign * r.val_metrics[metric])
    se = (top.cv_std or 0.0) / np.sqrt(cv)
    tied = [r for r in results if sign * (top.val_metrics[metric] - r.val_metrics[metric]) <= se]

    def cost(r):
        family = r.name.split(" ")[0]
        return order.index(family) if family in order else len(order)

    chosen = min(tied, key=cost)
    note = (f"winner {chosen.name}: validation {metric} {chosen.val_metrics[metric]:.4f}; best was {top.name} "
            f"{top.val_metrics[metric]:.4f}, within one CV standard error ({se:.4f}), so the cheaper model to "
            "serve and explain wins" if chosen is not top else
            f"winner {chosen.name}: best validation {metric} {chosen.val_metrics[metric]:.4f}")
    return chosen, note


def _tune(results, data, X_tr, y_tr, X_va, y_va, options, notes, step):
    from custscore.models.tuning import tune

    kind = data.kind
    top = evaluate.best(results, kind)
    per = options.tune_budget_s
    tuned, params, summary = tune(top.name, top.pipeline, X_tr, y_tr, kind, budget_seconds=per, seed=options.seed)
    notes.append(f"tuned {top.name}: {summary}")
    again = evaluate.evaluate_candidates({f"{top.name} (tuned)": tuned}, X_tr, y_tr, X_va, y_va, kind, cv=options.cv,
                                   seed=options.seed, on_progress=step, threshold_rule=options.threshold_rule,
                                   min_precision=options.min_precision)
    return sorted([*results, *again], key=lambda r: r.val_metrics[evaluate.PRIMARY_METRIC[kind]],
                  reverse=evaluate.higher_is_better(evaluate.PRIMARY_METRIC[kind]))


def train(store: Store, settings: Settings, options: TrainOptions, progress: Progress | None = None) -> list[TaskResult]:
    """Train every requested task; returns one result per task, in order.

    Raises
    ------
    InputError
        Not enough data, a cutoff outside the events, an unknown target field.
    """
    options.validate()
    with threadpool_limits(limits=1, user_api="openmp"):
        return _train(store, settings, options, progress)


def _train(store: Store, settings: Settings, options: TrainOptions, progress: Progress | None) -> list[TaskResult]:
    # OpenMP threads (HistGradientBoosting) spin-wait; with anything else on 2 cores that made a soft-voting
    # fit 5-50x slower, so training runs them single-threaded (XGBoost keeps its own n_jobs).
    from custscore.models.segment_task import train_segment

    started = time.perf_counter()
    corpus = dataset.read_corpus(store)
    results = []
    builders = {"churn": lambda: dataset.churn_data(corpus, options.cutoff, options.horizon_days),
                "satisfaction": lambda: dataset.satisfaction_data(corpus), "segment": lambda: dataset.segment_data(corpus)}
    if options.target:
        builders = {options.target: lambda: dataset.target_data(corpus, options.target, options.kind)}
    for task, build in builders.items():
        if task not in options.tasks and not options.target:
            continue
        if len(options.tasks) > 1 and not options.target and not dataset.has_target(corpus, task):
            log.warning("%s: skipped, %s", task, dataset.missing_target_reason(corpus, task))
            continue
        data = drop_uninformative(build())
        data.categories = list(corpus.categories)
        run = train_segment if data.kind == "segment" else train_supervised
        results.append(run(store, settings, data, options, progress))
        if task == "churn":  # buyers' model above; customers who had not bought get their own (models/population.py)
            newcomers = population.first_purchase_data(corpus, options.cutoff, options.horizon_days, dataset.MIN_ROWS)
            if newcomers is not None:
                newcomers = drop_uninformative(newcomers)
                newcomers.categories = list(corpus.categories)
                results.append(train_supervised(store, settings, newcomers, options, progress))
    log.info("trained %d task(s) in %.1f s", len(results), time.perf_counter() - started)
    return results
