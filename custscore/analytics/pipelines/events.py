"""Pipelines over ``events``: RFM per customer, monthly revenue, top categories and products.

Each event is one order; ``amount`` is its revenue. Distinct customers per
group are counted with two ``$group`` stages, (customer, group) then group,
rather than ``$addToSet`` + ``$size``: the same answer without a set of ids
per group (mongomock's ``$addToSet`` is quadratic).

Shaped for the embedded store, whose engine (mongomock) runs in Python and
sorts ``$group`` keys with a Python BSON comparator: an early ``$project``
computes each key once, and pair keys are scalars (a string or a number),
which compare about five times faster than ``{a: ..., b: ...}`` documents.
MongoDB gives the same results either way.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from custscore.analytics.pipelines.common import (
    MS_PER_DAY,
    Pipeline,
    PipelineInfo,
    check_datetime,
    check_limit,
    month_index,
)
from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.schema import EVENTS

DEFAULT_LIMIT = 10
PAIR_SEPARATOR = "\x1f"


def rfm_stages(by: str | None = None, reference: dt.datetime | str | None = None) -> list[dict]:
    """Stages: recency, frequency and monetary value per customer from events up to ``reference``.

    Parameters
    ----------
    by : None
        Not supported (one row per customer).
    reference : datetime or ISO text
        Recency is measured from here; later events are left out. Required to
        build the stages; :func:`run_pipeline` defaults it to the latest event ``ts``.
    """
    if reference is None:
        raise InputError("rfm needs reference=DATE to build its stages; run_pipeline defaults it to the latest event")
    return _rfm_stages(check_datetime("reference", reference), cut=True)


def _rfm_stages(ref: dt.datetime, cut: bool) -> list[dict]:
    # without cut (reference = latest event) the $match would drop nothing but cost a filter check per event
    return [
        *([{"$match": {"ts": {"$lte": ref}}}] if cut else []),
        {"$group": {"_id": "$customer_id", "frequency": {"$sum": 1}, "monetary": {"$sum": "$amount"},
                    "mean_amount": {"$avg": "$amount"}, "first_purchase": {"$min": "$ts"},
                    "last_purchase": {"$max": "$ts"}}},
        # date - date is milliseconds in MongoDB
        {"$addFields": {"recency_days": {"$divide": [{"$subtract": [ref, "$last_purchase"]}, MS_PER_DAY]}}},
        {"$sort": {"_id": 1}},
    ]


def latest_event_ts(store: Store) -> dt.datetime | None:
    """The largest event ``ts`` (read through the ``ts`` index), or None without events."""
    doc = next(iter(store.collection(EVENTS).find({}, {"ts": 1}, sort=[("ts", -1)], limit=1)), None)
    return None if doc is None else doc.get("ts")


def _run_rfm(store: Store, by: str | None = None, reference: dt.datetime | str | None = None) -> pd.DataFrame:
    columns = INFOS["rfm"].column_names()
    if reference is None:
        ref, cut = latest_event_ts(store), False
        if ref is None:
            return pd.DataFrame(columns=columns)
    else:
        ref, cut = check_datetime("reference", reference), True
    rows = store.collection(EVENTS).aggregate(_rfm_stages(ref, cut))
    frame = pd.DataFrame([{"customer_id": r["_id"], **{c: r.get(c) for c in columns[1:]}} for r in rows],
                         columns=columns)
    frame.attrs["reference"] = ref
    return frame


def monthly_revenue_stages(by: str | None = None) -> list[dict]:
    """Stages: revenue, orders and active customers per calendar month of ``ts``.

    The output ``_id`` is the month index ``year * 12 + month - 1`` (integers
    group and sort fastest); the runner turns it into ``YYYY-MM``.
    """
    return [
        {"$project": {"_id": 0, "customer_id": 1, "amount": 1, "month": month_index("$ts")}},
        {"$group": {"_id": {"customer": "$customer_id", "month": "$month"},
                    "revenue": {"$sum": "$amount"}, "orders": {"$sum": 1}}},
        {"$group": {"_id": "$_id.month", "revenue": {"$sum": "$revenue"}, "orders": {"$sum": "$orders"},
                    "active_customers": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]


def _month_text(index: int | None) -> str | None:
    return None if index is None else f"{int(index) // 12:04d}-{int(index) % 12 + 1:02d}"


def _run_monthly_revenue(store: Store, by: str | None = None) -> pd.DataFrame:
    columns = INFOS["monthly_revenue"].column_names()
    rows = store.collection(EVENTS).aggregate(monthly_revenue_stages())
    return pd.DataFrame([{"month": _month_text(r["_id"]), **{c: r.get(c) for c in columns[1:]}} for r in rows],
                        columns=columns)


def _top_stages(key: str, limit: object, carry: tuple[str, ...] = ()) -> list[dict]:
    limit = check_limit(limit)
    first = {c: {"$first": f"${c}"} for c in (key, *carry)}
    # one string per (customer, key); \x1f (unit separator) does not occur in ids; missing key -> ""
    pair = {"$concat": ["$customer_id", PAIR_SEPARATOR, {"$ifNull": [f"${key}", ""]}]}
    stages = [
        {"$project": {"_id": 0, "pair": pair, "amount": 1, **{c: 1 for c in (key, *carry)}}},
        {"$group": {"_id": "$pair", "revenue": {"$sum": "$amount"}, "orders": {"$sum": 1}, **first}},
        {"$group": {"_id": f"${key}", "revenue": {"$sum": "$revenue"}, "orders": {"$sum": "$orders"},
                    "customers": {"$sum": 1}, **{c: {"$first": f"${c}"} for c in carry}}},
        {"$sort": {"revenue": -1, "_id": 1}},
    ]
    return [*stages, {"$limit": limit}] if limit else stages


def top_categories_stages(by: str | None = None, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """Stages: revenue, orders and distinct customers per category, by revenue descending."""
    return _top_stages("category", limit)


def top_products_stages(by: str | None = None, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """Stages: revenue, orders and distinct customers per product_id, by revenue descending."""
    return _top_stages("product_id", limit, carry=("category",))


def _top_runner(name: str, build, key: str):
    def run(store: Store, by: str | None = None, limit: int = DEFAULT_LIMIT) -> pd.DataFrame:
        columns = INFOS[name].column_names()
        rows = store.collection(EVENTS).aggregate(build(None, limit))
        return pd.DataFrame([{key: r["_id"], **{c: r.get(c) for c in columns[1:]}} for r in rows], columns=columns)

    return run


_LIMIT = {"limit": f"rows to return, highest revenue first (default {DEFAULT_LIMIT}; 0 = all)"}
_TOP = {"revenue": "sum of amount", "orders": "number of events", "customers": "distinct customer_id"}

INFOS = {
    "rfm": PipelineInfo(
        "rfm", "Recency, frequency and monetary value per customer (from events)", EVENTS,
        options={"reference": "date recency is measured from; later events are ignored (default: latest event ts)"},
        columns={"customer_id": "customer (customers without events have no row)",
                 "recency_days": "days from last purchase to the reference date (fractional)",
                 "frequency": "orders (events) up to the reference date", "monetary": "sum of amount",
                 "mean_amount": "mean amount per order", "first_purchase": "earliest ts",
                 "last_purchase": "latest ts"}),
    "monthly_revenue": PipelineInfo(
        "monthly_revenue", "Revenue, orders and active customers per calendar month", EVENTS,
        columns={"month": "YYYY-MM of ts (UTC)", "revenue": "sum of amount", "orders": "number of events",
                 "active_customers": "distinct customers with an event that month"}),
    "top_categories": PipelineInfo(
        "top_categories", "Categories by revenue, with orders and distinct customers", EVENTS, options=_LIMIT,
        columns={"category": "category (NaN/None = null/missing)", **_TOP}),
    "top_products": PipelineInfo(
        "top_products", "Products by revenue, with orders and distinct customers", EVENTS, options=_LIMIT,
        columns={"product_id": "product (NaN/None = null/missing)", "category": "category of the product's first event",
                 **_TOP}),
}

PIPELINES = [
    Pipeline(INFOS["rfm"], rfm_stages, _run_rfm),
    Pipeline(INFOS["monthly_revenue"], monthly_revenue_stages, _run_monthly_revenue),
    Pipeline(INFOS["top_categories"], top_categories_stages,
             _top_runner("top_categories", top_categories_stages, "category")),
    Pipeline(INFOS["top_products"], top_products_stages, _top_runner("top_products", top_products_stages, "product_id")),
]
