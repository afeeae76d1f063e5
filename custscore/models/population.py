"""Customers who never bought: a population of their own, with a model of their own (task ``first_purchase``).

The churn model learns from buyers only (someone who never bought cannot stop buying), so it must never score
or explain a customer with no purchase: before this, a new sign-up got "churn 95.3% (high risk)" because
"0 orders in the last year raises churn risk". Instead:

- **population**: customers signed up by the cutoff with no purchase by the cutoff;
- **label**: 1 when their first purchase falls in ``(cutoff, cutoff + horizon]``, the same leakage-free protocol
  and the same cutoff and horizon as churn (features use events up to the cutoff only, which for this population
  means the profile and the tenure);
- **registration**: its own task, ``first_purchase``, trained whenever churn is (``train --task churn`` or
  ``all``), with its own leaderboard, calibration, threshold and SHAP background;
- **scoring** (:class:`custscore.models.predict.ProductionModels`): each customer goes to the model of their
  population as of the scoring date. A customer without a purchase gets ``risk = "new"``,
  ``first_purchase_probability = p`` and ``churn_probability = 1 - p``, so ``churn_probability`` means the same
  thing for everyone: the probability of no purchase within the horizon. Their reasons come from the
  ``first_purchase`` model ("customer for 12 days lowers first-purchase chance").
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from custscore.errors import InputError
from custscore.models import feature_catalogue, features
from custscore.models import labels as churn_labels

log = logging.getLogger(__name__)

TASK = "first_purchase"
PHRASE = "first-purchase chance"
BAND = "new"


def first_purchase_labels(profiles: pd.DataFrame, events: pd.DataFrame, cutoff: dt.datetime,
                          horizon_days: int = churn_labels.DEFAULT_HORIZON_DAYS) -> pd.Series:
    """1 = first purchase in (cutoff, cutoff + horizon], for customers signed up by the cutoff who had not bought.

    Parameters
    ----------
    profiles : DataFrame
        Indexed by customer id with ``signup_date`` (``features.customers_frame``).
    events : DataFrame
        ``features.events_frame`` of all customers, including events after the cutoff.
    """
    signed, buyers, bought = churn_labels.label_window(profiles, events, cutoff, horizon_days)
    population = [cid for cid in signed if cid not in buyers]
    labels = pd.Series([1 if cid in bought else 0 for cid in population], index=population, dtype=int)
    labels.index.name = "customer_id"
    return labels


def first_purchase_data(corpus, cutoff: dt.datetime | None, horizon_days: int, min_rows: int = 50):
    """The ``first_purchase`` task's data (a ``dataset.TaskData``), or None with the reason logged.

    None when fewer than ``min_rows`` customers had not bought by the cutoff, or all of them did the same thing
    (a store of buyers only is normal; new customers are then scored ``new`` without a probability).
    """
    from custscore.models.dataset import TaskData

    cutoff = cutoff or churn_labels.default_cutoff(corpus.last_event, horizon_days)
    y = first_purchase_labels(corpus.profiles, corpus.events, cutoff, horizon_days)
    if len(y) < min_rows or y.nunique() < 2:
        log.warning("first_purchase: skipped, %s customers had not bought by %s (%s of them bought within %d days); "
                    "training needs %d with both outcomes", f"{len(y):,}", f"{pd.Timestamp(cutoff):%Y-%m-%d}",
                    f"{int(y.sum()):,}", horizon_days, min_rows)
        return None
    X = features.customer_features(corpus.profiles, corpus.events, cutoff, corpus.categories).loc[y.index]
    notes = [f"cutoff {pd.Timestamp(cutoff):%Y-%m-%d}, horizon {horizon_days} days: {len(y):,} customers signed up "
             f"with no purchase by the cutoff, {y.mean():.1%} made a first purchase in the window"]
    truth = corpus.truth.reindex(y.index) if corpus.truth is not None else None
    at_end = features.customer_features(corpus.profiles, corpus.events, corpus.last_event, corpus.categories)
    return TaskData(TASK, "classification", X, y, cutoff, [*feature_catalogue.numeric_features(), *corpus.shares],
                    feature_catalogue.categorical_features(), notes, truth, reference_X=at_end[never_bought(at_end)])


def never_bought(X: pd.DataFrame) -> pd.Series:
    """True for rows (feature frames) of customers with no purchase as of the frame's date."""
    if "orders_total" not in X.columns:
        raise InputError("feature frame lacks orders_total; build it with custscore.models.features.customer_features")
    return X["orders_total"].fillna(0.0) <= 0
