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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS, EVENTS

DAY = pd.Timedelta(days=1)
PROFILE_FIELDS = ("age", "income", "region", "channel", "support_tickets", "customer_satisfaction", "signup_date")
EVENT_FIELDS = ("customer_id", "ts", "amount", "quantity", "category")
# purchase_history is a summary of *all* stored events, future ones included; the features read the events
# themselves (up to the as-of date), so it stays out of the input version: a late event changes nothing.
IGNORED_IN_HASH = ("score", "_truth", "updated_at", "ingested_at", "purchase_history")


@dataclass(frozen=True)
class Feature:
    """One model input: its name, kind ('num' or 'cat'), what it means, and whether it is log-scaled."""

    name: str
    kind: str
    description: str
    log: bool = False


FEATURES: list[Feature] = [
    Feature("age", "num", "age in years"),
    Feature("income", "num", "annual income", log=True),
    Feature("region", "cat", "region"),
    Feature("channel", "cat", "preferred channel"),
    Feature("support_tickets", "num", "support tickets raised", log=True),
    Feature("customer_satisfaction", "num", "last survey satisfaction (1-10)"),
    Feature("tenure_days", "num", "days since signup"),
    Feature("tickets_per_year", "num", "support tickets per year of tenure", log=True),
    Feature("recency_days", "num", "days since the last purchase", log=True),
    Feature("orders_total", "num", "orders to date", log=True),
    Feature("orders_30d", "num", "orders in the last 30 days", log=True),
    Feature("orders_90d", "num", "orders in the last 90 days", log=True),
    Feature("orders_365d", "num", "orders in the last 365 days", log=True),
    Feature("spend_total", "num", "money spent to date", log=True),
    Feature("spend_mean", "num", "average order value", log=True),
    Feature("spend_std", "num", "spread of order values", log=True),
    Feature("items_per_order", "num", "items per order", log=True),
    Feature("trend_30d", "num", "orders in the last 30 days against the 90 days before (log ratio)"),
    Feature("trend_90d", "num", "orders in the last 90 days against the 275 days before (log ratio)"),
    Feature("gap_mean_days", "num", "average days between orders", log=True),
    Feature("overdue_ratio", "num", "days since last purchase over the usual gap between orders", log=True),
    Feature("category_count", "num", "distinct categories bought"),
    Feature("category_entropy", "num", "how evenly spending spreads over categories"),
    Feature("top_category", "cat", "most bought category"),
    Feature("orders_per_month", "num", "orders per month of tenure in the event window", log=True),
    Feature("spend_per_month", "num", "spend per month of tenure in the event window", log=True),
    Feature("age_x_income", "num", "age times income (thousands)", log=True),
]
_BY_NAME = {f.name: f for f in FEATURES}
FEATURE_NAMES = [f.name for f in FEATURES]
SHARE_PREFIX = "share_"
MAX_SHARE_CATEGORIES = 8


def share_name(category: str) -> str:
    """Feature name of a category's share of orders (the category set is fixed at training time)."""
    return SHARE_PREFIX + "".join(ch if ch.isalnum() else "_" for ch in str(category).lower())


def feature_info(name: str) -> Feature:
    """The :class:`Feature` of a fixed or per-category feature name."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith(SHARE_PREFIX):
        return Feature(name, "num", f"share of orders in {name[len(SHARE_PREFIX):]}")
    raise KeyError(name)


def top_categories(events: pd.DataFrame, n: int = MAX_SHARE_CATEGORIES) -> list[str]:
    """The ``n`` most ordered categories: each gets a share-of-orders feature."""
    return [str(c) for c in events["category"].dropna().value_counts().head(n).index]


def numeric_features(exclude: Iterable[str] = ()) -> list[str]:
    """Names of the numeric features, minus ``exclude``."""
    skip = set(exclude)
    return [f.name for f in FEATURES if f.kind == "num" and f.name not in skip]


def categorical_features(exclude: Iterable[str] = ()) -> list[str]:
    """Names of the categorical features, minus ``exclude``."""
    skip = set(exclude)
    return [f.name for f in FEATURES if f.kind == "cat" and f.name not in skip]


def log_features() -> list[str]:
    """Numeric features whose heavy right tail calls for log1p before scaling."""
    return [f.name for f in FEATURES if f.log]


def feature_schema(names: Sequence[str]) -> list[dict]:
    """Name, kind and dtype of each feature, for the registry manifest."""
    infos = [feature_info(n) for n in names]
    return [{"name": f.name, "kind": f.kind, "dtype": "float64" if f.kind == "num" else "object",
             "description": f.description} for f in infos]


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
        Indexed by customer id (str), columns :data:`FEATURE_NAMES` then the shares; numeric
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


# ---------------------------------------------------------------- reading the store

CUSTOMER_PROJECTION = {"score": 0, "purchase_history": 0}


def read_customers(store: Store, ids: Sequence[str] | None = None, with_truth: bool = False) -> list[dict]:
    """Customer documents (all, or the given ids) without their stored scores."""
    projection = dict(CUSTOMER_PROJECTION)
    if not with_truth:
        projection["_truth"] = 0
    filt = {} if ids is None else {"_id": {"$in": list(ids)}}
    return list(store[CUSTOMERS].find(filt, projection=projection))


def read_event_docs(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None) -> list[dict]:
    """Purchase event documents (of all customers or of ``ids``) with the fields features read, up to ``until``."""
    filt: dict = {} if ids is None else {"customer_id": {"$in": list(ids)}}
    if until is not None:
        filt["ts"] = {"$lte": until}
    projection = {k: 1 for k in EVENT_FIELDS} | {"_id": 0}
    return list(store[EVENTS].find(filt, projection=projection))


def read_events(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None) -> pd.DataFrame:
    """Purchase events (of all customers or of ``ids``), optionally only those up to ``until``."""
    return events_frame(read_event_docs(store, ids, until))


def features_for(store: Store, ids: Sequence[str], as_of: dt.datetime, categories: Sequence[str] = ()) -> pd.DataFrame:
    """Features of the given customers as of ``as_of``, read from the store (the scorer's path)."""
    customers = read_customers(store, ids)
    return customer_features(customers, read_events(store, ids, until=as_of), as_of, categories)


# ---------------------------------------------------------------- versions of the inputs

def _canonical(value):
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def document_hash(doc: dict) -> str:
    """Hash of what a customer document says, ignoring the score written back and bookkeeping fields."""
    body = {k: v for k, v in doc.items() if k not in IGNORED_IN_HASH}
    return hashlib.sha256(json.dumps(_canonical(body), separators=(",", ":")).encode()).hexdigest()[:16]


def input_versions(customers: Iterable[dict], events: pd.DataFrame) -> dict[str, str]:
    """customer id -> version of everything its features read (its document and its events)."""
    if not isinstance(events, pd.DataFrame) and len(customers) <= 32:
        plain = _plain_event_stats(customers, events)
        if plain is not None:
            return plain
    ev = events_frame(events)
    stats = ev.groupby("customer_id").agg(n=("amount", "size"), last=("ts", "max"), total=("amount", "sum"))
    out = {}
    for c in customers:
        cid = str(c.get("_id", c.get("customer_id")))
        row = stats.loc[cid] if cid in stats.index else None
        tail = "0" if row is None else f"{int(row['n'])}|{row['last'].isoformat()}|{row['total']:.2f}"
        out[cid] = hashlib.sha256(f"{document_hash(c)}|{tail}".encode()).hexdigest()[:16]
    return out


def _plain_event_stats(customers, events) -> dict[str, str] | None:
    """:func:`input_versions` of a few customers from plain event documents without pandas (None: not plain)."""
    ids = [str(c.get("_id", c.get("customer_id"))) for c in customers]
    stats: dict[str, list] = {cid: [0, None, []] for cid in ids}
    for e in events:
        ts, amount, cid = e.get("ts"), e.get("amount"), e.get("customer_id")
        if type(ts) is not dt.datetime or ts.tzinfo is not None or isinstance(amount, bool) \
                or not isinstance(amount, int | float | type(None)):
            return None
        if amount is None or amount != amount or cid not in stats:
            continue
        row = stats[cid]
        row[0] += 1
        row[1] = ts if row[1] is None or ts > row[1] else row[1]
        row[2].append(float(amount))
    out = {}
    for c, cid in zip(customers, ids, strict=True):
        n, last, amounts = stats[cid]
        tail = "0" if not n else f"{n}|{pd.Timestamp(last).isoformat()}|{math.fsum(amounts):.2f}"
        out[cid] = hashlib.sha256(f"{document_hash(c)}|{tail}".encode()).hexdigest()[:16]
    return out


# ---------------------------------------------------------------- plain words

_UNITS = {
    "age": "{v:.0f} years old", "income": "income {v:,.0f}", "support_tickets": "{v:.0f} support tickets",
    "customer_satisfaction": "survey satisfaction {v:.0f}/10", "tenure_days": "customer for {v:.0f} days",
    "tickets_per_year": "{v:.1f} support tickets a year", "recency_days": "last purchase {v:.0f} days ago",
    "orders_total": "{v:.0f} orders in all", "orders_30d": "{v:.0f} orders in the last 30 days",
    "orders_90d": "{v:.0f} orders in the last 90 days", "orders_365d": "{v:.0f} orders in the last year",
    "spend_total": "spent {v:,.0f} in all", "spend_mean": "average order {v:,.2f}",
    "spend_std": "order values vary by {v:,.0f}", "items_per_order": "{v:.1f} items per order",
    "gap_mean_days": "usually {v:.0f} days between orders", "overdue_ratio": "{v:.1f}x the usual gap since last order",
    "category_count": "bought from {v:.0f} categories", "category_entropy": "category spread {v:.2f}",
    "orders_per_month": "{v:.1f} orders a month", "spend_per_month": "spends {v:,.0f} a month",
    "age_x_income": "age x income {v:,.0f}k",
}


# counts read "1 order", "2 orders": (singular, plural) templates
_COUNTS = {
    "orders_total": ("1 order in all", "{n} orders in all"),
    "orders_30d": ("1 order in the last 30 days", "{n} orders in the last 30 days"),
    "orders_90d": ("1 order in the last 90 days", "{n} orders in the last 90 days"),
    "orders_365d": ("1 order in the last year", "{n} orders in the last year"),
    "support_tickets": ("1 support ticket", "{n} support tickets"),
    "category_count": ("bought from 1 category", "bought from {n} categories"),
    "tenure_days": ("customer for 1 day", "customer for {n} days"),
    "recency_days": ("last purchase 1 day ago", "last purchase {n} days ago"),
    "gap_mean_days": ("usually 1 day between orders", "usually {n} days between orders"),
}


def _counted(name: str, value: float) -> str:
    n = round(value)
    one, many = _COUNTS[name]
    return one if n == 1 else many.format(n=f"{n:,}")


MONEY = {"income": "income {m}", "spend_total": "spent {m} in all", "spend_mean": "average order {m}",
         "spend_std": "order values vary by {m}", "spend_per_month": "spends {m} a month"}


def money(amount: float, currency: str = "", decimals: int = 0) -> str:
    """An amount with the currency: a symbol before it (``$91``), a code after it (``91 USD``), else bare."""
    text = f"{amount:,.{decimals}f}"
    if not currency:
        return text
    return f"{currency}{text}" if len(currency) == 1 else f"{text} {currency}"


def describe(name: str, value, currency: str = "") -> str:
    """A feature value in plain words, e.g. ``describe("recency_days", 120) == "last purchase 120 days ago"``.

    ``currency`` (``Settings.currency``) is put on money: ``describe("spend_per_month", 91, "$") == "spends $91 a
    month"``.
    """
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if name == "recency_days" and missing:
        return "no purchase yet"
    if missing:
        return f"{_BY_NAME[name].description if name in _BY_NAME else name} unknown"
    if name in ("region", "channel", "top_category"):
        return f"{_BY_NAME[name].description} {value}"
    if name in ("trend_30d", "trend_90d"):
        window = name[6:8]
        ratio = math.exp(float(value))
        return f"buying {ratio:.1f}x as often in the last {window} days as before"
    if name in _COUNTS:
        return _counted(name, float(value))
    if name in MONEY:
        return MONEY[name].format(m=money(float(value), currency, 2 if name == "spend_mean" else 0))
    if name == "overdue_ratio" and float(value) < 0.1:
        return "last order well within the usual gap"  # not "0.0x the usual gap"
    if name in _UNITS:
        return _UNITS[name].format(v=float(value))
    if name.startswith(SHARE_PREFIX):
        share, category = float(value), name[len(SHARE_PREFIX):]
        return f"no orders in {category}" if share < 0.005 else f"{share:.0%} of orders in {category}"
    return f"{name} = {value}"
