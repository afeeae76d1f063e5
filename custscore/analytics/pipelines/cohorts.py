"""Cohort retention: signup month x months since signup -> share of the cohort that purchased.

Two pipelines: the activity pipeline groups events by (customer, year, month
of ``ts``), collects each customer's purchase months, joins the customer's
``signup_date`` with ``$lookup`` on ``_id`` (one look-up per customer),
unwinds the months and counts customers per (signup year, signup month, year,
month); the size pipeline counts all customers per signup month, purchasers
or not. The runner merges them. All keys are field paths or ``$year``/``$month``
of a path, which the embedded store groups without its per-document expression
engine; ``months_since`` is computed after the last ``$group``, on one row per
cell.

The result is tidy (one row per cohort and month with at least one active
customer). For the usual triangle::

    frame.pivot(index="cohort", columns="months_since", values="retention").fillna(0.0)

Cells missing from the frame had no purchaser; note that months before the
first stored event (e.g. the early months of cohorts older than the simulated
event window) are absent too and are not zero retention.
"""

from __future__ import annotations

import pandas as pd

from custscore.analytics.pipelines.common import Pipeline, PipelineInfo, month_key, month_text
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS, EVENTS


def _months(year: str, month: str) -> dict:
    return {"$add": [{"$multiply": [year, 12]}, month]}


def cohort_retention_stages(by: str | None = None) -> list[dict]:
    """Stages on ``events``: active customers per (signup month, months since signup).

    Returns
    -------
    list of dict
        Stages whose output rows are ``{_id: {sy, sm, y, m}, active_customers, months_since}``
        (signup year and month, purchase year and month), ``months_since >= 0``, sorted.
    """
    purchase = month_key("$ts")
    return [
        {"$group": {"_id": {"customer": "$customer_id", **purchase}}},
        {"$group": {"_id": "$_id.customer", "months": {"$push": "$_id"}}},
        {"$lookup": {"from": CUSTOMERS, "localField": "_id", "foreignField": "_id", "as": "customer"}},
        # keep only the signup date before $unwind: unwinding copies the whole document
        {"$project": {"_id": 0, "months": 1, "signup": {"$arrayElemAt": ["$customer.signup_date", 0]}}},
        {"$match": {"signup": {"$type": "date"}}},
        {"$unwind": "$months"},
        {"$group": {"_id": {"sy": {"$year": "$signup"}, "sm": {"$month": "$signup"}, "y": "$months.y",
                            "m": "$months.m"}, "active_customers": {"$sum": 1}}},
        {"$addFields": {"months_since": {"$subtract": [_months("$_id.y", "$_id.m"), _months("$_id.sy", "$_id.sm")]}}},
        {"$match": {"months_since": {"$gte": 0}}},
        {"$sort": {"_id.sy": 1, "_id.sm": 1, "months_since": 1}},
    ]


def cohort_size_stages() -> list[dict]:
    """Stages on ``customers``: customers per signup month (``_id`` = ``{y: year, m: month}``)."""
    return [
        {"$match": {"signup_date": {"$type": "date"}}},
        {"$group": {"_id": month_key("$signup_date"), "cohort_size": {"$sum": 1}}},
    ]


def _run_cohort_retention(store: Store, by: str | None = None) -> pd.DataFrame:
    columns = INFO.column_names()
    active = store.collection(EVENTS).aggregate(cohort_retention_stages())
    sizes = {month_text(r["_id"]): r["cohort_size"] for r in store.collection(CUSTOMERS).aggregate(cohort_size_stages())}
    records = []
    for r in active:
        cohort = month_text({"y": r["_id"]["sy"], "m": r["_id"]["sm"]})
        size = sizes.get(cohort, 0)
        records.append({"cohort": cohort, "months_since": int(r["months_since"]), "cohort_size": size,
                        "active_customers": r["active_customers"],
                        "retention": r["active_customers"] / size if size else float("nan")})
    frame = pd.DataFrame(records, columns=columns)
    return frame.sort_values(["cohort", "months_since"], kind="stable").reset_index(drop=True)


INFO = PipelineInfo(
    "cohort_retention", "Share of each signup-month cohort purchasing N months after signup", EVENTS,
    columns={"cohort": "signup month YYYY-MM", "months_since": "calendar months from signup month to purchase month",
             "cohort_size": "customers who signed up that month", "active_customers": "of those, with an event that month",
             "retention": "active_customers / cohort_size; pivot on cohort x months_since for the triangle"},
    also_reads=(CUSTOMERS,),
)

PIPELINES = [Pipeline(INFO, cohort_retention_stages, _run_cohort_retention)]
