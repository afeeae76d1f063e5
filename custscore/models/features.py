"""Customer features as of a date: one function for training and for the scorer (no train/serve skew).

``customer_features(customers, events, as_of)`` turns customer documents and
their purchase events into one row per customer using only events with
``ts <= as_of``. The trainer calls it with every customer and a cutoff; the
scorer calls it with one micro-batch and "now". A test computes a customer
through both paths and compares.

Profile fields (age, income, region, channel, support tickets, the survey
``customer_satisfaction``) are snapshots: the store keeps their current value,
not their history, so a training cutoff in the past sees today's profile.
Purchase features are exact as of the cutoff.

The neighbours: :mod:`~custscore.models.feature_catalogue` names the features (kinds, meanings, log scaling),
:mod:`~custscore.models.feature_reads` reads customers and events from the store,
:mod:`~custscore.models.few_features` computes a handful of customers without pandas,
:mod:`~custscore.models.input_version` hashes what a score was computed from, and
:mod:`~custscore.models.feature_words` says feature values in plain words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from custscore.models.feature_catalogue import FEATURE_NAMES, FEATURES, MAX_SHARE_CATEGORIES, share_name

DAY = pd.Timedelta(days=1)
PROFILE_FIELDS = ("age", "income", "region", "channel", "support_tickets", "customer_satisfaction", "signup_date")
EVENT_FIELDS = ("customer_id", "ts", "amount", "quantity", "category")


def top_categories(events: pd.DataFrame, n: int = MAX_SHARE_CATEGORIES) -> list[str]:
    """The ``n`` most ordered categories: each gets a share-of-orders feature."""
    return [str(c) for c in events["category"].dropna().value_counts().head(n).index]


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": pd.Series(dtype=object), "ts": pd.Series(dtype="datetime64[us]"),
                         "amount": pd.Series(dtype=float), "quantity": pd.Series(dtype=float),
                         "category": pd.Series(dtype=object)})


def events_frame(events: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Events as a typed frame with the columns the features read."""
    if isinstance(events, pd.DataFrame):
        frame = events
    else:
        rows = [{k: e.get(k) for k in EVENT_FIELDS} for e in events]
        frame = pd.DataFrame(rows, columns=list(EVENT_FIELDS)) if rows else _empty_events()
    frame = frame.copy()
    frame["ts"] = pd.to_datetime(frame["ts"], errors="coerce")
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce")
    frame["quantity"] = pd.to_numeric(frame.get("quantity"), errors="coerce").fillna(1.0)
    frame["customer_id"] = frame["customer_id"].astype(object)
    return frame.dropna(subset=["ts", "amount"])


def customers_frame(customers: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Customer profiles as a frame indexed by customer id, numeric fields coerced (bad values become NaN)."""
    if isinstance(customers, pd.DataFrame):
        frame = customers.copy()
    else:
        rows = [{"customer_id": str(c.get("_id", c.get("customer_id"))), **{k: c.get(k) for k in PROFILE_FIELDS}}
                for c in customers]
        frame = pd.DataFrame(rows, columns=["customer_id", *PROFILE_FIELDS]).set_index("customer_id")
    for name in ("age", "income", "support_tickets", "customer_satisfaction"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    for name in ("region", "channel"):
        frame[name] = frame[name].where(frame[name].map(lambda v: isinstance(v, str)), None).astype(object)
    frame["signup_date"] = pd.to_datetime(frame["signup_date"], errors="coerce")
    frame.index = frame.index.astype(str)
    return frame


def _log_ratio(recent: pd.Series, recent_days: float, before: pd.Series, before_days: float) -> pd.Series:
    return np.log((recent / recent_days * 30 + 0.1) / (before / before_days * 30 + 0.1))


def customer_features(customers: Iterable[dict] | pd.DataFrame, events: Iterable[dict] | pd.DataFrame,
                      as_of: dt.datetime, categories: Sequence[str] = ()) -> pd.DataFrame:
    """One row of features per customer, using only events up to ``as_of``.

    Parameters
    ----------
    customers : list of dict or DataFrame
        Customer documents (``_id`` or ``customer_id`` plus profile fields), or
        the output of :func:`customers_frame`.
    events : list of dict or DataFrame
        Purchase events of (at least) these customers; later events are ignored.
    as_of : datetime
        Naive UTC time the features describe.
    categories : sequence of str
        Categories that get a ``share_<category>`` column (share of orders, 0 without
        orders), after the fixed features; the trainer picks them with :func:`top_categories`.

    Returns
    -------
    DataFrame
        Indexed by customer id (str), columns ``feature_catalogue.FEATURE_NAMES`` then the shares; numeric
        columns float64 with NaN for missing, categorical columns object.
    """
    prof = customers_frame(customers)
    ev = events_frame(events)
    as_of_ts = pd.Timestamp(as_of)
    ev = ev[(ev["ts"] <= as_of_ts) & ev["customer_id"].isin(prof.index)]
    out = pd.DataFrame(index=prof.index)
    for name in ("age", "income", "region", "channel", "support_tickets", "customer_satisfaction"):
        out[name] = prof[name]
    tenure = (as_of_ts - prof["signup_date"]) / DAY
    out["tenure_days"] = tenure.clip(lower=0)
    out["tickets_per_year"] = prof["support_tickets"] / (out["tenure_days"].clip(lower=90) / 365.0)

    age_days = (as_of_ts - ev["ts"]) / DAY
    g = ev.assign(age_days=age_days).groupby("customer_id", sort=False)
    orders = g.size()
    out["orders_total"] = orders.reindex(out.index).fillna(0.0).astype(float)
    last = g["age_days"].min().reindex(out.index)
    first = g["age_days"].max().reindex(out.index)
    out["recency_days"] = last
    for days in (30, 90, 365):
        n = ev[age_days <= days].groupby("customer_id").size()
        out[f"orders_{days}d"] = n.reindex(out.index).fillna(0.0).astype(float)
    out["spend_total"] = g["amount"].sum().reindex(out.index).fillna(0.0)
    out["spend_mean"] = g["amount"].mean().reindex(out.index)
    out["spend_std"] = g["amount"].std(ddof=0).reindex(out.index)
    out["items_per_order"] = (g["quantity"].sum().reindex(out.index) / out["orders_total"]).where(out["orders_total"] > 0)
    before_30 = ev[(age_days > 30) & (age_days <= 120)].groupby("customer_id").size().reindex(out.index).fillna(0.0)
    before_90 = ev[(age_days > 90) & (age_days <= 365)].groupby("customer_id").size().reindex(out.index).fillna(0.0)
    out["trend_30d"] = _log_ratio(out["orders_30d"], 30, before_30, 90)
    out["trend_90d"] = _log_ratio(out["orders_90d"], 90, before_90, 275)
    gap = ((first - last) / (out["orders_total"] - 1)).where(out["orders_total"] > 1)
    out["gap_mean_days"] = gap
    out["overdue_ratio"] = last / gap.clip(lower=1.0)

    per_cat = ev.groupby(["customer_id", "category"]).size().unstack(fill_value=0)
    if len(per_cat):
        share = per_cat.div(per_cat.sum(axis=1), axis=0)
        logs = np.log(share.where(share > 0, 1.0))
        out["category_count"] = (per_cat > 0).sum(axis=1).reindex(out.index).fillna(0.0).astype(float)
        # Summed per customer in the long form (its own categories, in order): a row sum over the batch's category
        # columns rounds differently with the batch's width, and the reasons must not depend on the batch.
        terms = (-(share * logs)).stack()
        out["category_entropy"] = terms[terms != 0].groupby(level=0, sort=False).sum().reindex(out.index).fillna(0.0)
        out["top_category"] = per_cat.idxmax(axis=1).reindex(out.index).astype(object)
    else:
        share = pd.DataFrame(index=out.index)
        out["category_count"] = 0.0
        out["category_entropy"] = 0.0
        out["top_category"] = None
    out["top_category"] = out["top_category"].where(out["top_category"].notna(), None).astype(object)
    window_months = np.minimum(out["tenure_days"].fillna(365.0), 365.0).clip(lower=30.0) / 30.0
    out["orders_per_month"] = out["orders_365d"] / window_months
    spend_365 = ev[age_days <= 365].groupby("customer_id")["amount"].sum().reindex(out.index).fillna(0.0)
    out["spend_per_month"] = spend_365 / window_months
    out["age_x_income"] = out["age"] * out["income"] / 1000.0
    shares = {share_name(c): (share[c].reindex(out.index).fillna(0.0) if c in share.columns else 0.0)
              for c in categories}
    out = pd.concat([out[FEATURE_NAMES], pd.DataFrame(shares, index=out.index)], axis=1)
    for f in FEATURES:
        out[f.name] = out[f.name].astype(float) if f.kind == "num" else out[f.name].astype(object)
    for name in shares:
        out[name] = out[name].astype(float)
    out.index.name = "customer_id"
    return out
