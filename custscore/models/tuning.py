"""Hyperparameter search within a wall-clock budget: random search for sklearn/XGBoost, KerasTuner for the MLP.

Budget rule: the default pipeline is fitted first (its time ``t`` is the cost unit and the fallback result), a
candidate is only started when it is expected to finish with time left for the final refit, so a call returns
within about ``budget_seconds`` plus one fit.
"""

from __future__ import annotations

import logging
import tempfile
import time

import numpy as np
from scipy.stats import loguniform, randint, uniform
from sklearn.base import clone
from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold, cross_val_score
from sklearn.utils.class_weight import compute_sample_weight

from custscore.errors import ConfigError
from custscore.models.evaluate import PRIMARY_METRIC, SCORING, openmp_single_thread
from custscore.models.keras_mlp import build_network, import_keras, seeded_batches, validation_split

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 30
ENSEMBLES = ("voting", "stacking")


def search_space(name, kind):
    """Per-family search space (``model__`` prefixed) for :class:`~sklearn.model_selection.ParameterSampler`."""
    cls = kind == "classification"
    spaces = {
        "linear": {"model__C": loguniform(1e-3, 1e2)} if cls else {"model__alpha": loguniform(1e-3, 1e3)},
        "tree": {"model__max_depth": randint(3, 13), "model__min_samples_leaf": [5, 10, 20, 30, 50, 100]},
        "forest": {"model__n_estimators": [60, 100, 150], "model__max_depth": [6, 8, 12, 16],
                   "model__min_samples_leaf": [1, 3, 5, 10, 20],
                   "model__max_features": ["sqrt", 0.3, 0.5] if cls else [0.3, 0.5, 0.7]},
        "gboost": {"model__learning_rate": loguniform(0.02, 0.3), "model__max_leaf_nodes": [7, 15, 31, 63],
                   "model__min_samples_leaf": [10, 20, 50, 100], "model__l2_regularization": loguniform(1e-4, 10)},
        "xgboost": {"model__n_estimators": [150, 300, 500], "model__max_depth": randint(2, 9),
                    "model__learning_rate": loguniform(0.02, 0.3), "model__subsample": uniform(0.6, 0.4),
                    "model__colsample_bytree": uniform(0.5, 0.5), "model__min_child_weight": loguniform(1, 20),
                    "model__reg_lambda": loguniform(0.1, 10)},
    }
    if name not in spaces:
        raise ConfigError(f"tune: no search space for family '{name}'; tunable: {sorted(spaces) + ['mlp']}")
    return spaces[name]


def _splitter(kind, cv, seed):
    return (StratifiedKFold if kind == "classification" else KFold)(n_splits=cv, shuffle=True, random_state=seed)


def _timed_fit(pipeline, X, y):
    start = time.perf_counter()
    fitted = clone(pipeline).fit(X, y)
    return fitted, time.perf_counter() - start


def tune(name, pipeline, X, y, kind, budget_seconds=120, seed=0, cv=3):
    """Tune one zoo pipeline within a time budget (random search; KerasTuner for "mlp"); OpenMP runs one thread.

    Parameters
    ----------
    name : str
        Zoo family name; picks the search space ("mlp" uses KerasTuner; ensembles are fitted untuned).
    pipeline : Pipeline
        Unfitted candidate from :func:`custscore.models.zoo.make_candidates`.
    X, y
        Training data (searched with ``cv`` folds; the winner is refitted on all of it).
    kind : {"regression", "classification"}
    budget_seconds : float
        Wall-clock budget; the call returns within about the budget plus one fit.
    seed, cv : int

    Returns
    -------
    tuple[Pipeline, dict, str]
        Fitted best pipeline, its parameters (``model__`` prefixed; empty when defaults were kept), a one-line
        summary.
    """
    with openmp_single_thread():
        return _tune(name, pipeline, X, y, kind, budget_seconds, seed, cv)


def _tune(name, pipeline, X, y, kind, budget_seconds, seed, cv):
    """Body of :func:`tune`, run with OpenMP capped."""
    if kind not in PRIMARY_METRIC:
        raise ConfigError(f"kind: '{kind}' is not a supervised task kind; use one of {list(PRIMARY_METRIC)}")
    start = time.perf_counter()
    if name in ENSEMBLES:
        fitted, _ = _timed_fit(pipeline, X, y)
        return fitted, {}, f"{name}: not tuned (ensemble members keep zoo defaults; tune the member families instead)"
    if name == "mlp":
        return _tune_mlp(pipeline, X, y, kind, budget_seconds, seed, start)
    space = search_space(name, kind)
    default_fit, t_fit = _timed_fit(pipeline, X, y)
    defaults = {p: pipeline.get_params()[p] for p in space}
    sampled = list(ParameterSampler(space, n_iter=MAX_CANDIDATES - 1, random_state=seed))
    metric = PRIMARY_METRIC[kind]
    sign = -1.0 if metric == "mae" else 1.0  # scorers are "greater is better"; MAE comes back negated
    splitter = _splitter(kind, cv, seed)
    est = t_fit * (cv - 1)  # cv fits on (cv-1)/cv of the rows, before any candidate has been timed
    tried = []
    # The defaults go first so a search can only replace them with something that cross-validates better.
    for params in [defaults, *sampled]:
        elapsed = time.perf_counter() - start
        if elapsed + est + t_fit > budget_seconds:
            break
        t0 = time.perf_counter()
        candidate = clone(pipeline).set_params(**params)
        score = float(np.mean(cross_val_score(candidate, X, y, scoring=SCORING[metric], cv=splitter, n_jobs=1)))
        took = time.perf_counter() - t0
        est = max(est, took) if len(tried) < 2 else 0.5 * (est + took)
        tried.append((score, params))
    if len(tried) < 2:
        return default_fit, {}, (f"{name}: kept defaults (budget {budget_seconds:.0f}s allows no search; "
                                 f"one fit takes {t_fit:.1f}s)")
    best_score, best_params = max(tried, key=lambda t: t[0])
    if best_params is defaults:
        return default_fit, {}, (f"{name}: kept defaults, best of {len(tried)} candidates "
                                 f"({cv}-fold {metric} {sign * best_score:.4f})")
    fitted = clone(pipeline).set_params(**best_params).fit(X, y)
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in best_params.items()}
    default_score = tried[0][0]
    summary = (f"{name}: random search, {len(tried)} candidates in {time.perf_counter() - start:.0f}s; {cv}-fold "
               f"{metric} {sign * best_score:.4f} (defaults {sign * default_score:.4f}) with {shown}")
    logger.info(summary)
    return fitted, dict(best_params), summary


def _prepare(pipeline, X_tr, y_tr, X_val):
    """Fit the steps before ``model`` on training rows only (resamplers apply to training rows alone)."""
    Xt, yt, Xv = X_tr, np.asarray(y_tr), X_val
    for _, step in pipeline.steps[:-1]:
        step = clone(step)
        if hasattr(step, "fit_resample"):
            Xt, yt = step.fit_resample(Xt, yt)
        else:
            Xt = step.fit_transform(Xt, yt)
            Xv = step.transform(Xv)
    return np.asarray(Xt, dtype=np.float32), np.asarray(yt), np.asarray(Xv, dtype=np.float32)


def _tune_mlp(pipeline, X, y, kind, budget_seconds, seed, start):
    keras = import_keras()  # before keras_tuner, which imports Keras itself
    import keras_tuner as kt

    model = pipeline.named_steps["model"]
    default_fit, t_fit = _timed_fit(pipeline, X, y)
    trials = int((budget_seconds - (time.perf_counter() - start) - t_fit) // max(t_fit, 1e-3))
    if trials < 2:
        return default_fit, {}, f"mlp: kept defaults (budget {budget_seconds:.0f}s allows no search; one fit takes {t_fit:.1f}s)"
    trials = min(trials, MAX_CANDIDATES)
    y_arr = np.asarray(y)
    classes = np.unique(y_arr)
    stratify_on = np.searchsorted(classes, y_arr) if kind == "classification" else y_arr
    tr, val = validation_split(stratify_on, model.validation_fraction or 0.15, seed, stratify=kind == "classification")
    X_rows = X.iloc if hasattr(X, "iloc") else X
    Xt, yt, Xv = _prepare(pipeline, X_rows[tr], y_arr[tr], X_rows[val])
    yv = y_arr[val]
    if kind == "classification":
        yt, yv = np.searchsorted(classes, yt).astype(np.float32), np.searchsorted(classes, yv).astype(np.float32)
        weights = compute_sample_weight(model.class_weight, yt) if model.class_weight is not None else None
    else:
        mu, sd = float(np.mean(yt)), float(np.std(yt)) or 1.0
        yt, yv = ((yt - mu) / sd).astype(np.float32), ((yv - mu) / sd).astype(np.float32)
        weights = None
    deadline = start + budget_seconds - t_fit

    class _Deadline(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if time.perf_counter() > deadline:
                self.model.stop_training = True

    def hypermodel(hp):
        hidden = (hp.Choice("units1", [32, 64, 128], default=64), hp.Choice("units2", [0, 16, 32, 64], default=32))
        return build_network(Xt.shape[1], hidden, hp.Choice("dropout", [0.0, 0.1, 0.2, 0.3], default=0.1),
                             hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3), kind, seed=seed)

    class _RandomSearch(kt.RandomSearch):
        def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
            # KerasTuner imports tensorboard here unconditionally; it is not a dependency and we pass no
            # TensorBoard callback, so there is nothing to configure.
            return None

    # Seeded locally like the wrappers' fit (weights, dropout, the per-epoch shuffle; KerasTuner's sampler has its
    # own seed): tuning never reseeds the process's generators.
    sw = None if weights is None else weights.astype(np.float32)
    train = seeded_batches(Xt, yt, sw, np.arange(len(yt)), model.batch_size, seed, shuffle=True)
    val = seeded_batches(Xv, yv, None, np.arange(len(yv)), model.batch_size, seed, shuffle=False)
    with tempfile.TemporaryDirectory() as tmp:
        # KerasTuner reads seed=0 as "no seed" and draws one from Python's global generator: shift it off zero
        tuner = _RandomSearch(hypermodel, objective="val_loss", max_trials=trials, seed=int(seed) + 1, directory=tmp,
                              project_name="mlp", overwrite=True)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(model.patience), restore_best_weights=True)
        tuner.search(train, validation_data=val, epochs=int(model.epochs), callbacks=[stop, _Deadline()], verbose=0,
                     shuffle=False)  # the dataset shuffles itself
        n_done = len(tuner.oracle.trials)
        best_hp = tuner.get_best_hyperparameters(1)[0].values
    hidden = tuple(int(u) for u in (best_hp["units1"], best_hp["units2"]) if int(u) > 0)
    params = {"model__hidden": hidden, "model__dropout": float(best_hp["dropout"]),
              "model__learning_rate": float(best_hp["learning_rate"])}
    fitted = clone(pipeline).set_params(**params).fit(X, y)
    summary = (f"mlp: KerasTuner random search, {n_done} trials in {time.perf_counter() - start:.0f}s "
               f"(objective validation loss); best hidden={hidden}, dropout={params['model__dropout']}, "
               f"learning_rate={params['model__learning_rate']}")
    logger.info(summary)
    return fitted, params, summary
