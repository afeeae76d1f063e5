"""Rating prediction on explicit ratings (events with ``rating``): scikit-surprise models under K-fold CV.

Models: the global mean, ``BaselineOnly`` (user and item biases, ALS-fitted), ``KNNBaseline``
(user-user, mean-squared-difference similarity on the residuals of the baselines) and ``SVD`` (biased
matrix factorisation, Funk/Koren). Several ratings of one product by one customer count
once (their mean). RMSE and MAE are averaged over the folds.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.store.validation import RATING_RANGE

log = logging.getLogger(__name__)

MIN_RATINGS = 50


def ratings_frame(events: pd.DataFrame) -> pd.DataFrame:
    """customer_id, product_id, rating (mean of repeats) of the rated events."""
    rated = events.dropna(subset=["rating"])
    return rated.groupby(["customer_id", "product_id"], as_index=False, sort=True)["rating"].mean()


def _models(seed: int) -> dict:
    from surprise import SVD, BaselineOnly, KNNBaseline

    return {
        "BaselineOnly": BaselineOnly(bsl_options={"method": "als", "n_epochs": 10}, verbose=False),
        # user-based MSD: with a few ratings per product, item-item neighbourhoods are too thin to beat the
        # biases (measured: item-based 0.708-0.715 RMSE vs BaselineOnly 0.710; user-based MSD 0.698)
        "KNNBaseline": KNNBaseline(k=40, min_k=2, sim_options={"name": "msd", "user_based": True, "shrinkage": 50},
                                   bsl_options={"method": "als", "n_epochs": 10}, verbose=False),
        "SVD": SVD(n_factors=20, n_epochs=30, lr_all=0.007, reg_all=0.05, random_state=seed),
    }


def compare_rating_models(events: pd.DataFrame, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """RMSE and MAE of the global mean, BaselineOnly, KNNBaseline and SVD with ``folds``-fold CV.

    Parameters
    ----------
    events : pandas.DataFrame
        :func:`~custscore.recommend.interactions.events_frame` rows; those with a rating are used.
    folds : int
        K of the K-fold split (shuffled with ``seed``).
    seed : int

    Returns
    -------
    pandas.DataFrame
        model, rmse, mae (fold means), rmse_std, fit_s, ratings; best RMSE first.

    Raises
    ------
    InputError
        Fewer than :data:`MIN_RATINGS` ratings.
    """
    from surprise import Dataset, Reader, accuracy
    from surprise.model_selection import KFold

    frame = ratings_frame(events)
    if len(frame) < MIN_RATINGS:
        raise InputError(f"rating: only {len(frame)} rated purchases; rating models need at least {MIN_RATINGS} "
                         f"(add a rating column in {RATING_RANGE[0]:g}..{RATING_RANGE[1]:g} to your events)")
    data = Dataset.load_from_df(frame[["customer_id", "product_id", "rating"]], Reader(rating_scale=RATING_RANGE))
    splitter = KFold(n_splits=folds, random_state=seed, shuffle=True)
    scores: dict[str, dict[str, list[float]]] = {}
    for trainset, testset in splitter.split(data):
        truth = np.array([r for _, _, r in testset])
        mean = trainset.global_mean
        s = scores.setdefault("global mean", {"rmse": [], "mae": [], "fit_s": []})
        s["rmse"].append(float(np.sqrt(np.mean((truth - mean) ** 2))))
        s["mae"].append(float(np.mean(np.abs(truth - mean))))
        s["fit_s"].append(0.0)
        for name, algo in _models(seed).items():
            started = time.perf_counter()
            algo.fit(trainset)
            predictions = algo.test(testset)
            s = scores.setdefault(name, {"rmse": [], "mae": [], "fit_s": []})
            s["fit_s"].append(time.perf_counter() - started)
            s["rmse"].append(float(accuracy.rmse(predictions, verbose=False)))
            s["mae"].append(float(accuracy.mae(predictions, verbose=False)))
    rows = [{"model": n, "rmse": float(np.mean(v["rmse"])), "mae": float(np.mean(v["mae"])),
             "rmse_std": float(np.std(v["rmse"])), "fit_s": float(np.mean(v["fit_s"])), "ratings": len(frame)}
            for n, v in scores.items()]
    board = pd.DataFrame(rows).sort_values("rmse", kind="stable").reset_index(drop=True)
    log.info("rating models (%d ratings, %d folds): %s", len(frame), folds,
             ", ".join(f"{r.model} {r.rmse:.4f}" for r in board.itertuples()))
    return board
