"""Pipelines over ``events``: RFM per customer, monthly revenue, top categories and products.

Each event is one order; ``amount`` is its revenue. The stages are plain
MongoDB: ``$group`` on field paths, documents of field paths and date parts
(``$year``/``$month`` of ``ts``), with no ``$project`` before it. The embedded
store evaluates exactly those keys and field-path accumulator arguments
without its (per-document, Python) expression engine, so they cost little
beyond reading the events.

Distinct customers per group are counted in one of two equivalent forms
(see :func:`~custscore.analytics.pipelines.common.count_distinct_with_sets`):
``$addToSet`` + ``$size`` on the embedded and memory stores, two ``$group``
stages, (key, customer) then key, on MongoDB. The stage builders return the
MongoDB form unless called with ``sets=True``.
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
    count_distinct_with_sets,
    month_key,
    month_text,
)
from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.history import event_time_range
from custscore.store.schema import EVENTS

DEFAULT_LIMIT = 10


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


def _run_rfm(store: Store, by: str | None = None, reference: dt.datetime | str | None = None) -> pd.DataFrame:
    columns = INFOS["rfm"].column_names()
    if reference is None:
        ref, cut = event_time_range(store)[1], False
        if ref is None:
            return pd.DataFrame(columns=columns)
    else:
        ref, cut = check_datetime("reference", reference), True
    rows = store.collection(EVENTS).aggregate(_rfm_stages(ref, cut))
    frame = pd.DataFrame([{"customer_id": r["_id"], **{c: r.get(c) for c in columns[1:]}} for r in rows],
                         columns=columns)
    frame.attrs["reference"] = ref
    return frame


def _grouped(key: dict, scalar: bool, count: str, carry: tuple[str, ...], sets: bool) -> tuple[list[dict], list[dict]]:
    """Revenue, orders and distinct customers (``count``) per ``key``: (grouping stages, stages to finish after sorting).

    ``key`` maps output names to expressions on events; with ``scalar`` its
    single expression is the group ``_id`` itself, else ``_id`` is the document.
    """
    first = {c: {"$first": f"${c}"} for c in carry}
    group_id = next(iter(key.values())) if scalar else key
    if sets:
        return ([{"$group": {"_id": group_id, "revenue": {"$sum": "$amount"}, "orders": {"$sum": 1}, **first,
                             count: {"$addToSet": "$customer_id"}}}],
                [{"$addFields": {count: {"$size": f"${count}"}}}])
    second_id = f"$_id.{next(iter(key))}" if scalar else {name: f"$_id.{name}" for name in key}
    return ([{"$group": {"_id": {**key, "customer": "$customer_id"}, "revenue": {"$sum": "$amount"},
                         "orders": {"$sum": 1}, **first}},
             {"$group": {"_id": second_id, "revenue": {"$sum": "$revenue"}, "orders": {"$sum": "$orders"},
                         count: {"$sum": 1}, **first}}],
            [])


def monthly_revenue_stages(by: str | None = None, *, sets: bool = False) -> list[dict]:
    """Stages: revenue, orders and active customers per calendar month of ``ts``.

    Parameters
    ----------
    by : None
        Not supported (one row per month).
    sets : bool
        Count distinct customers with ``$addToSet`` + ``$size`` (fast on the
        embedded store) instead of two ``$group`` stages (scales on MongoDB).

    Returns
    -------
    list of dict
        Stages whose output ``_id`` is ``{y: year, m: month}``, in month order.
    """
    stages, finish = _grouped(month_key("$ts"), False, "active_customers", (), sets)
    return [*stages, *finish, {"$sort": {"_id.y": 1, "_id.m": 1}}]


def _run_monthly_revenue(store: Store, by: str | None = None) -> pd.DataFrame:
    columns = INFOS["monthly_revenue"].column_names()
    rows = store.collection(EVENTS).aggregate(monthly_revenue_stages(sets=count_distinct_with_sets(store.backend)))
    return pd.DataFrame([{"month": month_text(r["_id"]), **{c: r.get(c) for c in columns[1:]}} for r in rows],
                        columns=columns)


def _top_stages(key: str, limit: object, carry: tuple[str, ...] = (), sets: bool = False) -> list[dict]:
    limit = check_limit(limit)
    stages, finish = _grouped({"key": f"${key}"}, True, "customers", carry, sets)
    # size the sets after $limit: only the returned rows need it
    return [*stages, {"$sort": {"revenue": -1, "_id": 1}}, *([{"$limit": limit}] if limit else []), *finish]


def top_categories_stages(by: str | None = None, limit: int = DEFAULT_LIMIT, *, sets: bool = False) -> list[dict]:
    """Stages: revenue, orders and distinct customers per category, by revenue descending.

    ``limit`` 0 returns every category; ``sets`` as in :func:`monthly_revenue_stages`.
    """
    return _top_stages("category", limit, sets=sets)


def top_products_stages(by: str | None = None, limit: int = DEFAULT_LIMIT, *, sets: bool = False) -> list[dict]:
    """Stages: revenue, orders and distinct customers per product_id, by revenue descending.

    ``category`` is the category of the product's first event; ``limit`` and
    ``sets`` as in :func:`top_categories_stages`.
    """
    return _top_stages("product_id", limit, carry=("category",), sets=sets)


def _top_runner(name: str, build, key: str):
    def run(store: Store, by: str | None = None, limit: int = DEFAULT_LIMIT) -> pd.DataFrame:
        columns = INFOS[name].column_names()
        rows = store.collection(EVENTS).aggregate(build(None, limit, sets=count_distinct_with_sets(store.backend)))
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
