"""Training data per task: features as of the right date, the target, and the ground truth when simulated."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.models import feature_catalogue, feature_reads, features, labels
from custscore.store.base import Store

TASKS = ("satisfaction", "churn", "segment")
MIN_ROWS = 50


@dataclass
class TaskData:
    """What one task trains on."""

    task: str
    kind: str  # regression | classification | segment
    X: pd.DataFrame
    y: pd.Series | None
    as_of: dt.datetime
    numeric: list[str]
    categorical: list[str]
    notes: list[str] = field(default_factory=list)
    truth: pd.DataFrame | None = None  # simulated data: _truth rows aligned to X
    classes: list | None = None  # classification with a user target: the two original values
    categories: list[str] = field(default_factory=list)
    horizon_days: int | None = None  # churn-like labels (no purchase within the horizon): enables BG/NBD
    # the drift reference: the task's population as the scorer will see it (features as of the data's end),
    # not the training frame at the cutoff, whose tenure and recency are shifted by the horizon
    reference_X: pd.DataFrame | None = None


@dataclass
class Corpus:
    """Every customer and event, read once for all tasks."""

    customers: list[dict]
    profiles: pd.DataFrame
    events: pd.DataFrame
    first_event: dt.datetime
    last_event: dt.datetime
    truth: pd.DataFrame | None
    categories: list[str] = field(default_factory=list)  # each gets a share-of-orders feature

    @property
    def shares(self) -> list[str]:
        """Names of the per-category share features."""
        return [feature_catalogue.share_name(c) for c in self.categories]


def read_corpus(store: Store) -> Corpus:
    """Read customers (with ``_truth`` when present) and all events from the store."""
    customers = feature_reads.read_customers(store, with_truth=True)
    if len(customers) < MIN_ROWS:
        raise InputError(f"the store has {len(customers)} customers; training needs at least {MIN_ROWS}. "
                         "Load data first: custscore simulate --customers 20000 (or custscore ingest FILE)")
    events = feature_reads.read_events(store)
    if events.empty:
        raise InputError("the store has no purchase events; load them with custscore ingest events.csv --kind events")
    return Corpus(customers, features.customers_frame(customers), events, events["ts"].min().to_pydatetime(),
                  events["ts"].max().to_pydatetime(), labels.truth_frame(customers), features.top_categories(events))


def _frame(corpus: Corpus, as_of: dt.datetime) -> pd.DataFrame:
    return features.customer_features(corpus.profiles, corpus.events, as_of, corpus.categories)


def churn_data(corpus: Corpus, cutoff: dt.datetime | None, horizon_days: int) -> TaskData:
    """Features up to the cutoff, label = no purchase in (cutoff, cutoff + horizon]."""
    cutoff = cutoff or labels.default_cutoff(corpus.last_event, horizon_days)
    labels.check_window(cutoff, horizon_days, corpus.first_event, corpus.last_event)
    y = labels.churn_labels(corpus.profiles, corpus.events, cutoff, horizon_days)
    if len(y) < MIN_ROWS or y.nunique() < 2:
        raise InputError(f"cutoff={pd.Timestamp(cutoff).date()} leaves {len(y)} buying customers with "
                         f"{y.nunique()} label value(s); pick a cutoff with more history (--cutoff) or load more data")
    X = _frame(corpus, cutoff).loc[y.index]
    at_end = _frame(corpus, corpus.last_event)
    reference = at_end[at_end["orders_total"].fillna(0.0) > 0]
    notes = [f"cutoff {pd.Timestamp(cutoff):%Y-%m-%d}, horizon {horizon_days} days: {len(y):,} customers who bought "
             f"by the cutoff, {y.mean():.1%} made no purchase in the window"]
    truth = corpus.truth.reindex(y.index) if corpus.truth is not None else None
    return TaskData("churn", "classification", X, y, cutoff, [*feature_catalogue.numeric_features(), *corpus.shares], feature_catalogue.categorical_features(),
                    notes, truth, horizon_days=horizon_days, reference_X=reference)


def has_target(corpus: Corpus, task: str) -> bool:
    """Whether the corpus can train ``task`` at all (``train --task all`` skips the ones it cannot, and says so)."""
    return missing_target_reason(corpus, task) is None


def missing_target_reason(corpus: Corpus, task: str) -> str | None:
    """Why ``task`` has nothing to learn from in this corpus, or None when it has."""
    if task == "satisfaction":
        known = int(corpus.profiles["customer_satisfaction"].notna().sum())
        if known < MIN_ROWS:
            return (f"only {known} customers have customer_satisfaction (training needs {MIN_ROWS}); "
                    "ingest a customer_satisfaction column to train it")
    return None


def satisfaction_data(corpus: Corpus) -> TaskData:
    """Features as of the last event, target = the survey satisfaction where it is known."""
    as_of = corpus.last_event
    y = corpus.profiles["customer_satisfaction"].dropna().astype(float)
    if len(y) < MIN_ROWS:
        raise InputError(f"only {len(y)} customers have customer_satisfaction; training needs {MIN_ROWS}")
    exclude = ("customer_satisfaction",)
    X = _frame(corpus, as_of).loc[y.index].drop(columns=list(exclude))
    truth = corpus.truth.reindex(y.index) if corpus.truth is not None else None
    notes = [f"{len(y):,} customers with a survey score (mean {y.mean():.2f})"]
    return TaskData("satisfaction", "regression", X, y, as_of, [*feature_catalogue.numeric_features(exclude), *corpus.shares],
                    feature_catalogue.categorical_features(exclude), notes, truth)


def segment_data(corpus: Corpus) -> TaskData:
    """Features of every customer as of the last event (unsupervised)."""
    X = _frame(corpus, corpus.last_event)
    truth = corpus.truth.reindex(X.index) if corpus.truth is not None else None
    return TaskData("segment", "segment", X, None, corpus.last_event, [*feature_catalogue.numeric_features(), *corpus.shares],
                    feature_catalogue.categorical_features(), [f"{len(X):,} customers"], truth)


def target_data(corpus: Corpus, target: str, kind: str | None) -> TaskData:
    """A user's own labelled field (e.g. ``converted``) as the target; kind inferred unless given."""
    raw = pd.Series({str(c["_id"]): _dig(c, target) for c in corpus.customers}, name=target, dtype=object)
    if raw.isna().all():
        raise InputError(f"no customer has the field {target!r}; check the name (dotted paths work, e.g. "
                         "'labels.converted') or ingest it with the customers")
    kind = kind or labels.infer_kind(raw)
    if kind not in ("regression", "classification"):
        raise InputError(f"kind={kind!r} is not supported for --target; use regression or classification")
    y, classes = labels.encode_target(raw, kind)
    exclude = (target,) if target in feature_catalogue.FEATURE_NAMES else ()
    X = _frame(corpus, corpus.last_event).loc[y.index].drop(columns=list(exclude))
    notes = [f"target {target!r} ({kind}) known for {len(y):,} customers"]
    if classes is not None:
        notes.append(f"positive class = {classes[1]!r} ({y.mean():.1%})")
    return TaskData(target, kind, X, y, corpus.last_event, [*feature_catalogue.numeric_features(exclude), *corpus.shares],
                    feature_catalogue.categorical_features(exclude), notes, None, classes)


def _dig(doc: dict, path: str):
    value = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
