"""``custscore train --task recommend``: compare the rankers and rating models, register the winner.

1. Read purchases with a product (and ratings) and the customers' age band and channel.
2. Per-customer temporal holdout (last 20% of each customer's interactions, at least one).
3. Every ranker learns the past; validation customers pick the winner on NDCG@10 with the
   one-standard-error rule of the other tasks (:func:`custscore.models.train.pick_winner`),
   ties going to the model cheapest to serve; test customers give the reported figures.
   On simulated data an oracle row ranks by the true next-purchase probabilities.
4. Rating models (when there are ratings): K-fold RMSE/MAE, reported next to the leaderboard.
5. The winner is refitted on every purchase and registered as task ``recommend`` in the
   ``arrays`` layout (numpy + JSON).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from custscore.config import Settings
from custscore.errors import InputError
from custscore.models import registry
from custscore.recommend import evaluate, interactions, rankers
from custscore.recommend.serving import Recommender
from custscore.store.base import Store

log = logging.getLogger(__name__)

TASK = "recommend"
KIND = "ranking"
# cheapest to serve first (per batch: a sparse product, a small dense product, a per-customer solve, a scan of users)
SERVING_ORDER = ("popularity", "popularity-segment", "item-knn", "pure-svd", "bpr", "als", "user-knn")
NOTES = {
    "popularity": "baseline: most bought in the last 90 days; no personalisation",
    "popularity-segment": "most bought by the same age band and channel; the cold-start fallback",
    "item-knn": "cosine between products, top-100 neighbours; explains itself ('because you bought X')",
    "user-knn": "50 most similar customers vote; keeps the whole training matrix to serve",
    "als": "implicit ALS, 64 factors; customers folded in by one least-squares step",
    "bpr": "implicit BPR (pairwise SGD), 64 factors",
    "pure-svd": "scipy/sklearn truncated SVD, 64 factors: the plain alternative to implicit",
}
# Oracle factory: (customers' _truth by id) -> (customer id, bought product ids) -> (product ids, scores)
OracleScores = Callable[[dict, Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclass
class RecommendOptions:
    """What ``train --task recommend`` was asked to do."""

    seed: int = 0
    folds: int = 5
    repeatable: tuple[str, ...] | None = None  # None: inferred from repeat purchases per category
    models: tuple[str, ...] | None = None  # default: every ranker
    ratings: bool = True
    rating_folds: int = 3  # surprise's KNN predicts in pure Python: 3 folds keep training short
    promote: bool = True


@dataclass
class RecommendResult:
    """The outcome: leaderboards, the winner, its version."""

    task: str
    leaderboard: pd.DataFrame
    winner: str
    version: str | None
    test_metrics: dict
    ratings: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    kind: str = KIND


def candidates(seed: int, names: Sequence[str] | None = None) -> dict[str, object]:
    """Unfitted rankers by name."""
    every = {"popularity": rankers.Popularity(), "popularity-segment": rankers.Popularity(by_segment=True),
             "item-knn": rankers.ItemKNN(), "user-knn": rankers.UserKNN(), "als": rankers.ALS(seed=seed), "bpr": rankers.BPR(seed=seed),
             "pure-svd": rankers.PureSVD(seed=seed)}
    if names is None:
        return every
    unknown = [n for n in names if n not in every]
    if unknown:
        raise InputError(f"model {unknown[0]!r} is not a recommender; use one of {', '.join(every)}")
    return {n: every[n] for n in names}


def _oracle_fn(inter: interactions.Interactions, truth: dict, scores_of: OracleScores | None) -> evaluate.OracleFn | None:
    if scores_of is None or not truth:
        return None
    column = {p: j for j, p in enumerate(inter.items.tolist())}
    mapped: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(ids array) -> (positions in ids, columns)

    def oracle(row: int, bought: np.ndarray) -> np.ndarray | None:
        t = truth.get(str(inter.customers[row]))
        ids, probs = scores_of(t or {}, inter.items[bought].tolist())
        if not len(ids):
            return None
        if id(ids) not in mapped:  # the simulator returns one shared catalogue array: map it once
            cols = np.array([column.get(p, -1) for p in ids.tolist()])
            mapped[id(ids)] = (np.flatnonzero(cols >= 0), cols[cols >= 0])
        pos, cols = mapped[id(ids)]
        out = np.zeros(len(inter.items))
        out[cols] = probs[pos]
        return out

    return oracle


def fit_and_compare(events: pd.DataFrame, profiles: pd.DataFrame, options: RecommendOptions,
                    oracle_scores: OracleScores | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> tuple[RecommendResult, Recommender]:
    """Everything but the registry: leaderboard, winner and the production recommender (fitted on all events)."""
    from custscore.models.train import pick_winner  # the one-standard-error rule every task uses

    inter = interactions.index_events(events)
    if len(inter.customers) < interactions.MIN_CUSTOMERS:
        raise InputError(f"events: {len(inter.customers)} customers bought a product; recommendations need at "
                         f"least {interactions.MIN_CUSTOMERS} (load more events with a product_id)")
    notes = []
    repeatable = list(options.repeatable) if options.repeatable is not None else interactions.infer_repeatable(events)
    notes.append(f"repeatable categories ({'given' if options.repeatable is not None else 'inferred'}): "
                 f"{', '.join(repeatable) or 'none'}; other products are never recommended to a customer who "
                 "bought them")
    prof = profiles.reindex(inter.customers)
    segments = np.array([interactions.segment_of(a, c) for a, c in zip(prof["age"], prof["channel"], strict=True)], dtype=str)
    split = interactions.temporal_split(inter)
    hold = evaluate.make_holdout(inter, split, segments, repeatable, seed=options.seed)
    notes.append(f"temporal holdout: last 20% of each customer's purchases (at least 1) for {len(split.evaluated):,} "
                 f"customers with 2+ purchases; {len(hold.validation):,} validation / {len(hold.test):,} test "
                 f"customers; {len(split.past):,} past purchases train every model")
    results = evaluate.evaluate_rankers(candidates(options.seed, options.models), hold, folds=options.folds,
                                  on_progress=progress)
    best, pick_note = pick_winner(results, KIND, options.folds, metric=evaluate.PRIMARY, order=SERVING_ORDER)
    notes.append(pick_note)
    rows = list(results)
    truth = {} if "_truth" not in prof else {str(k): v for k, v in prof["_truth"].items() if isinstance(v, dict)}
    oracle = _oracle_fn(inter, truth, oracle_scores)
    if oracle is not None:
        o = evaluate.oracle_result(oracle, hold, folds=options.folds)
        if o is not None:
            rows.append(o)
            ratio = best.test_metrics[evaluate.PRIMARY] / max(o.test_metrics[evaluate.PRIMARY], 1e-12)
            notes.append(f"the winner reaches {ratio:.0%} of the oracle's test NDCG@10")
    board = evaluate.leaderboard(rows, NOTES)
    ratings = None
    if options.ratings and events["rating"].notna().any():
        from custscore.recommend.ratings import compare_rating_models

        try:
            ratings = compare_rating_models(events, folds=options.rating_folds, seed=options.seed)
        except InputError as exc:
            notes.append(f"rating models skipped: {exc}")
    # production: the winner and the serving parts relearn from every purchase
    X_all = inter.matrix()
    recent = inter.events[inter.events["ts"] >= inter.as_of - pd.Timedelta(days=90)]
    X_recent = inter.matrix(recent, half_life_days=None)
    winner = candidates(options.seed, [best.name])[best.name]
    winner.fit(X_recent if best.name.startswith("popularity") else X_all, segments)
    neighbours = winner if isinstance(winner, rankers.ItemKNN) else rankers.ItemKNN().fit(X_all)
    popular = rankers.Popularity(by_segment=True).fit(X_recent, segments)
    rec = Recommender(winner, neighbours, popular, inter.items, inter.item_category, repeatable)
    result = RecommendResult(TASK, board, best.name, None, best.test_metrics, ratings, notes)
    return result, rec


def train_recommender(store: Store, settings: Settings, options: RecommendOptions | None = None,
                      oracle_scores: OracleScores | None = None,
                      progress: Callable[[str, int, int], None] | None = None) -> RecommendResult:
    """Read the store, compare, and register the production recommender (task ``recommend``).

    Parameters
    ----------
    store, settings
        Data and registry.
    options : RecommendOptions, optional
    oracle_scores : callable, optional
        ``(customer _truth, bought product ids) -> (product ids, true scores)`` for the oracle row
        (the simulator's :func:`custscore.simulator.products.oracle_scores`; the CLI passes it).
    progress : callable, optional
        ``(what, done, total)``.

    Returns
    -------
    RecommendResult

    Raises
    ------
    InputError
        No purchases with a product, too few customers, no repeat customers.
    """
    options = options or RecommendOptions()
    started = time.perf_counter()
    events = interactions.read_events(store)
    profiles = interactions.read_profiles(store)
    result, rec = fit_and_compare(events, profiles, options, oracle_scores, progress)
    board = result.leaderboard
    extra = {"winner": result.winner, "leaderboard": board.to_dict("records"), "notes": result.notes,
             "ratings": None if result.ratings is None else result.ratings.to_dict("records"),
             "repeatable_categories": rec.repeatable_categories, "products": len(rec.items)}
    metrics = {f"test_{k}": v for k, v in result.test_metrics.items()}
    val = board.loc[board["model"] == result.winner, f"val_{evaluate.PRIMARY}"]
    metrics[f"val_{evaluate.PRIMARY}"] = float(val.iloc[0])
    fingerprint = registry.training_fingerprint(
        events[["customer_id", "product_id", "ts"]].astype(str).reset_index(drop=True))
    result.version = registry.save_model(store, settings, TASK, rec, kind=KIND, features=[], metrics=metrics,
                                         training_fingerprint=fingerprint, extra=extra, promote=options.promote)
    log.info("recommend: %s won, registered as %s in %.1f s", result.winner, result.version,
             time.perf_counter() - started)
    return result


def load_recommender(store: Store, settings: Settings, version: str = registry.PRODUCTION) -> Recommender:
    """The verified production recommender (ModelError if none was trained)."""
    return registry.load_model(store, settings, TASK, version).pipeline
