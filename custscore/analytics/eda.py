"""Exploratory data analysis, the data: customers and events as DataFrames with derived RFM and tenure.

Loading reads each collection once with a projection of the fields the EDA
needs. :mod:`custscore.analytics.profiling` measures every field and derives the
preprocessing it calls for; :mod:`custscore.analytics.findings` turns the
numbers into a few sentences for the terminal and the report.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.history import event_time_range
from custscore.store.schema import CUSTOMERS, EVENTS

log = logging.getLogger(__name__)

MAX_EVENTS = 1_000_000  # beyond this, events are sampled (fixed seed) for the event-level figures

CUSTOMER_PROJECTION = {
    "customer_id": 1, "age": 1, "income": 1, "region": 1, "channel": 1, "signup_date": 1,
    "support_tickets": 1, "customer_satisfaction": 1, "purchase_history.orders": 1,
    "purchase_history.items": 1, "purchase_history.total_spent": 1, "purchase_history.first_purchase": 1,
    "purchase_history.last_purchase": 1, "purchase_history.categories": 1, "_truth.persona": 1,
    "_truth.churned_at": 1, "_truth.churn_probability": 1, "score": 1,
}
EVENT_PROJECTION = {"_id": 0, "customer_id": 1, "ts": 1, "amount": 1, "quantity": 1, "category": 1, "channel": 1,
                    "product_id": 1}

@dataclass
class Dataset:
    """What the EDA works on.

    Attributes
    ----------
    customers : pandas.DataFrame
        One row per customer: public fields, flattened ``purchase_history``,
        derived RFM/tenure columns, ``truth_*`` and ``score_*`` columns when present.
    events : pandas.DataFrame
        Purchase events (all of them, or a fixed-seed sample when ``events_sampled``).
    n_events : int
        Events in the store.
    events_sampled : bool
        Whether ``events`` is a sample.
    first_event, last_event : datetime or None
        Event date range in the store.
    as_of : datetime or None
        Reference time for recency and tenure: the last event (or the last signup).
    """

    customers: pd.DataFrame
    events: pd.DataFrame
    n_events: int
    events_sampled: bool
    first_event: dt.datetime | None
    last_event: dt.datetime | None
    as_of: dt.datetime | None

    @property
    def has_truth(self) -> bool:
        """Whether simulated ground truth (``_truth``) is present."""
        return "truth_churned" in self.customers and self.customers["truth_churned"].notna().any()

    @property
    def has_scores(self) -> bool:
        """Whether the scorer has written ``score`` onto customers."""
        return "score_churn_probability" in self.customers and self.customers["score_churn_probability"].notna().any()


def _customer_row(doc: dict) -> dict:
    h = doc.get("purchase_history") or {}
    truth = doc.get("_truth")
    score = doc.get("score") or {}
    row = {k: doc.get(k) for k in ("customer_id", "age", "income", "region", "channel", "signup_date",
                                   "support_tickets", "customer_satisfaction")}
    row["customer_id"] = row["customer_id"] or doc.get("_id")
    row.update(orders=h.get("orders", 0), items=h.get("items", 0), total_spent=h.get("total_spent", 0.0),
               first_purchase=h.get("first_purchase"), last_purchase=h.get("last_purchase"),
               n_categories=len(h.get("categories") or {}))
    if isinstance(truth, dict):
        row.update(truth_persona=truth.get("persona"), truth_churned=truth.get("churned_at") is not None,
                   truth_churn_probability=truth.get("churn_probability"))
    if score:
        row.update({f"score_{k}": score.get(k) for k in ("churn_probability", "risk", "satisfaction",
                                                           "segment", "segment_name", "scored_at")})
        recs = score.get("recommendations")
        if isinstance(recs, list) and recs:  # product ids, best first (the report's popularity of what is recommended)
            row["score_recommended"] = [r.get("product_id") for r in recs if isinstance(r, dict)]
    return row


def read_customers(store: Store) -> pd.DataFrame:
    """All customers as a DataFrame (one ``find`` with a projection), before derived columns.

    Raises
    ------
    InputError
        When the store holds no customers.
    """
    rows = [_customer_row(d) for d in store.collection(CUSTOMERS).find({}, CUSTOMER_PROJECTION)]
    if not rows:
        raise InputError("no customers yet: run custscore simulate or custscore ingest")
    df = pd.DataFrame(rows)
    for col in ("age", "income", "support_tickets", "customer_satisfaction", "orders", "items", "total_spent"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("signup_date", "first_purchase", "last_purchase"):
        df[col] = pd.to_datetime(df[col], errors="coerce")
    if "truth_churned" in df:
        df["truth_churned"] = df["truth_churned"].astype("boolean")
    return df


def read_events(store: Store, max_events: int = MAX_EVENTS, seed: int = 0) -> tuple[pd.DataFrame, int, bool]:
    """Events as a DataFrame; a fixed-seed Bernoulli sample of about ``max_events`` when there are more.

    Returns
    -------
    (events, n_events, sampled)
    """
    coll = store.collection(EVENTS)
    total = coll.count()
    keep = 1.0 if total <= max_events else max_events / total
    rng = np.random.default_rng(seed)
    rows = [d for d in coll.find({}, EVENT_PROJECTION) if keep >= 1.0 or rng.random() < keep]
    df = pd.DataFrame(rows, columns=list(k for k in EVENT_PROJECTION if k != "_id"))
    df["ts"] = pd.to_datetime(df["ts"], errors="coerce")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce").astype(float)
    return df, total, keep < 1.0


def load_dataset(store: Store, max_events: int = MAX_EVENTS, seed: int = 0, as_of: dt.datetime | None = None) -> Dataset:
    """Customers (with derived RFM and tenure columns) and events, ready for the EDA.

    ``as_of`` (``report --as-of``) measures recency and tenure at that time instead of the
    last event; it may not lie before the last event (the summaries hold every event).
    """
    customers = read_customers(store)
    events, n_events, sampled = read_events(store, max_events, seed)
    first, last = event_time_range(store) if n_events else (None, None)
    if as_of is not None and last is not None and as_of < last:
        raise InputError(f"--as-of {as_of:%Y-%m-%d} is before the newest event ({last:%Y-%m-%d}); the report "
                         f"measures at a date on or after it: use --as-of {last:%Y-%m-%d} or later")
    as_of = as_of or last or (customers["signup_date"].max() if customers["signup_date"].notna().any() else None)
    as_of = pd.Timestamp(as_of).to_pydatetime() if as_of is not None else None
    add_derived(customers, as_of)
    log.info("loaded %d customers and %d of %d events", len(customers), len(events), n_events)
    return Dataset(customers, events, n_events, sampled, first, last, as_of)


def add_derived(customers: pd.DataFrame, as_of: dt.datetime | None) -> pd.DataFrame:
    """Add RFM (recency_days, orders, total_spent), avg_order_value and tenure_days in place."""
    ref = pd.Timestamp(as_of) if as_of is not None else pd.NaT
    day = pd.Timedelta(days=1)
    customers["recency_days"] = (ref - customers["last_purchase"]) / day
    customers["tenure_days"] = ((ref - customers["signup_date"]) / day).clip(lower=0)
    orders = customers["orders"].where(customers["orders"] > 0)
    customers["avg_order_value"] = customers["total_spent"] / orders
    customers["n_categories"] = customers["n_categories"].astype(float)
    return customers
