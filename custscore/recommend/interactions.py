"""Purchases as a customer x product matrix: reading, indexing, the per-customer temporal split, weighting.

Any events with ``customer_id``, ``product_id`` and ``ts`` work, simulated or a
user's own (``custscore ingest events.csv --kind events`` with a ``product_id``
column; an optional ``rating`` column in 1..5 feeds the rating models). Events
without a product are ignored here.

Weights (implicit feedback): every purchase counts ``0.5 ** (age_days / half_life)``
(recency), the sum per customer and product is damped with ``log1p`` (a fifth
purchase of the same coffee says less than the first).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS, EVENTS

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("customer_id", "product_id", "category", "ts", "quantity", "rating")
HOLDOUT_FRACTION = 0.2
HALF_LIFE_DAYS = 120.0
REPEAT_SHARE = 0.05  # a category whose (customer, product) pairs repeat this often is repeatable
MIN_CUSTOMERS = 20


def events_frame(rows: Sequence[dict] | pd.DataFrame) -> pd.DataFrame:
    """Events with a product as a typed frame (columns :data:`EVENT_COLUMNS`), sorted by customer and time."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for c in EVENT_COLUMNS:
        if c not in frame:
            frame[c] = np.nan if c in ("rating", "quantity") else None
    frame = frame[list(EVENT_COLUMNS)]
    frame = frame[frame["product_id"].notna() & frame["customer_id"].notna()].copy()
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["product_id"] = frame["product_id"].astype(str)
    frame["category"] = frame["category"].where(frame["category"].notna(), "unknown").astype(str)
    frame["ts"] = pd.to_datetime(frame["ts"], errors="coerce")
    frame["rating"] = pd.to_numeric(frame["rating"], errors="coerce")
    frame["quantity"] = pd.to_numeric(frame["quantity"], errors="coerce").fillna(1.0)
    frame = frame.dropna(subset=["ts"])
    return frame.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)


def read_events(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None) -> pd.DataFrame:
    """Events that name a product (of all customers or of ``ids``, up to ``until``) from the store."""
    filt: dict = {"product_id": {"$ne": None}}
    if ids is not None:
        filt["customer_id"] = {"$in": list(ids)}
    if until is not None:
        filt["ts"] = {"$lte": until}
    return events_frame(pd.DataFrame(store[EVENTS].find_columns(EVENT_COLUMNS, filt)))


def read_profiles(store: Store) -> pd.DataFrame:
    """age, channel and (when simulated) ``_truth`` of every customer, indexed by customer id."""
    docs = store[CUSTOMERS].find({}, projection={"age": 1, "channel": 1, "_truth": 1})
    frame = pd.DataFrame([{"customer_id": str(d["_id"]), "age": d.get("age"), "channel": d.get("channel"),
                           "_truth": d.get("_truth")} for d in docs])
    if frame.empty:
        return pd.DataFrame(columns=["age", "channel", "_truth"], index=pd.Index([], name="customer_id"))
    return frame.set_index("customer_id")


def segment_of(age: object, channel: object) -> str:
    """"customers like you": an age band and the channel, e.g. ``"30-44/web"``."""
    try:
        a = float(age)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        a = float("nan")
    band = "unknown" if not np.isfinite(a) else "<30" if a < 30 else "30-44" if a < 45 else "45-59" if a < 60 else "60+"
    return f"{band}/{channel if isinstance(channel, str) and channel else 'unknown'}"


@dataclass
class Interactions:
    """Events indexed to rows (customers) and columns (products)."""

    events: pd.DataFrame  # events_frame + integer columns u, i
    customers: np.ndarray  # row -> customer id
    items: np.ndarray  # column -> product id
    item_category: np.ndarray  # column -> category
    as_of: pd.Timestamp

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.customers), len(self.items)

    def matrix(self, events: pd.DataFrame | None = None, half_life_days: float | None = HALF_LIFE_DAYS,
               as_of: pd.Timestamp | None = None) -> sp.csr_matrix:
        """Implicit-feedback matrix (customers x products) of ``events`` (default: all), recency and repeat weighted."""
        return weighted_matrix(self.events if events is None else events, self.shape, as_of or self.as_of,
                               half_life_days)


def index_events(events: pd.DataFrame, customers: Sequence[str] | None = None) -> Interactions:
    """Index customers and products of an :func:`events_frame` (extra ``customers`` get empty rows)."""
    if events.empty:
        raise InputError("events: no purchase names a product_id; ingest events with a product_id column "
                         "(custscore ingest events.csv --kind events)")
    cust = pd.Index(sorted(set(events["customer_id"]) | set(customers or ())))
    first = events.drop_duplicates("product_id")
    items = pd.Index(sorted(first["product_id"]))
    category = first.set_index("product_id")["category"].reindex(items).to_numpy(dtype=object)
    ev = events.copy()
    ev["u"] = cust.get_indexer(ev["customer_id"])
    ev["i"] = items.get_indexer(ev["product_id"])
    return Interactions(ev, cust.to_numpy(dtype=object), items.to_numpy(dtype=object), category, ev["ts"].max())


def weighted_matrix(events: pd.DataFrame, shape: tuple[int, int], as_of: pd.Timestamp,
                    half_life_days: float | None = HALF_LIFE_DAYS) -> sp.csr_matrix:
    """``log1p(sum of 0.5 ** (age / half_life))`` per (customer, product); ``half_life_days=None``: plain counts."""
    age = (as_of - events["ts"]).dt.total_seconds().to_numpy() / 86_400.0 if half_life_days else None
    return weights_matrix(age, events["u"].to_numpy(), events["i"].to_numpy(), shape, half_life_days)


def weights_matrix(age_days: np.ndarray | None, u: np.ndarray, i: np.ndarray, shape: tuple[int, int],
                   half_life_days: float | None = HALF_LIFE_DAYS) -> sp.csr_matrix:
    """:func:`weighted_matrix` from arrays: each event's age in days (unused without a half-life), row, column."""
    w = np.power(0.5, np.maximum(age_days, 0.0) / half_life_days) if half_life_days else np.ones(len(u))
    m = sp.csr_matrix((w, (u, i)), shape=shape, dtype=np.float64)
    m.sum_duplicates()
    m.data = np.log1p(m.data)
    return m.astype(np.float32)


def infer_repeatable(events: pd.DataFrame, share: float = REPEAT_SHARE) -> list[str]:
    """Categories in which at least ``share`` of (customer, product) pairs were bought more than once."""
    pairs = events.groupby(["category", "customer_id", "product_id"], observed=True).size()
    repeat = (pairs > 1).groupby(level="category").mean()
    return sorted(str(c) for c, v in repeat.items() if v >= share)


@dataclass
class Split:
    """The per-customer temporal holdout."""

    past: pd.DataFrame  # events the models may learn from
    future: pd.DataFrame  # each evaluated customer's last interactions
    evaluated: np.ndarray  # row indices of customers with a future


def temporal_split(inter: Interactions, fraction: float = HOLDOUT_FRACTION) -> Split:
    """Each customer's last ``fraction`` of interactions (at least one) is the future; others keep everything.

    Customers with a single interaction have no past to learn from and stay whole in training.
    Ties in time are broken by the events' order, so a split is deterministic.
    """
    ev = inter.events
    n = ev.groupby("u")["u"].transform("size").to_numpy()
    pos = ev.groupby("u").cumcount().to_numpy()
    k = np.maximum(1, np.floor(fraction * n + 0.5)).astype(int)
    future = (n >= 2) & (pos >= n - k)
    if not future.any():
        raise InputError("events: no customer has two purchases with a product_id; the temporal holdout needs "
                         "repeat customers (load more events)")
    return Split(ev[~future], ev[future], np.unique(ev.loc[future, "u"].to_numpy()))


def relevant_sets(future: pd.DataFrame) -> dict[int, set[int]]:
    """customer row -> the product columns bought in its future."""
    return {int(u): set(g.tolist()) for u, g in future.groupby("u")["i"]}
