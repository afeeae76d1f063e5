"""Cohort retention: signup month x months since signup -> share of the cohort that purchased.

Two pipelines: the activity pipeline groups events by customer first (the
set of purchase months of each customer), joins the customer's
``signup_date`` with ``$lookup`` on ``_id``, then unwinds the months and
counts customers per (cohort, months_since); the size pipeline counts all
customers per signup month, purchasers or not. The runner merges them.

The (cohort, months_since) pair is grouped as one number,
``signup month index * 1000 + months_since``, not as a ``{cohort, months_since}``
document: mongomock (the embedded store's engine) sorts ``$group`` keys with a
Python comparator that is about five times slower on documents. The runner
decodes it.

The result is tidy (one row per cohort and month with at least one active
customer). For the usual triangle::

    frame.pivot(index="cohort", columns="months_since", values="retention").fillna(0.0)

Cells missing from the frame had no purchaser; note that months before the
first stored event (e.g. the early months of cohorts older than the simulated
event window) are absent too and are not zero retention.
"""

from __future__ import annotations

import pandas as pd

from custscore.analytics.pipelines.common import Pipeline, PipelineInfo, month_index, month_label
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS, EVENTS

CELL = 1000  # months_since < CELL: 83 years


def cohort_retention_stages(by: str | None = None) -> list[dict]:
    """Stages on ``events``: active customers per (signup month, months since signup)."""
    return [
        {"$group": {"_id": "$customer_id", "months": {"$addToSet": month_index("$ts")}}},
        {"$lookup": {"from": CUSTOMERS, "localField": "_id", "foreignField": "_id", "as": "customer"}},
        # keep only the signup date before $unwind: unwinding copies the whole document
        {"$project": {"months": 1, "signup": {"$arrayElemAt": ["$customer.signup_date", 0]}}},
        {"$match": {"signup": {"$type": "date"}}},
        {"$project": {"months": 1, "signup_month": month_index("$signup")}},
        {"$unwind": "$months"},
        {"$project": {"signup_month": 1, "months_since": {"$subtract": ["$months", "$signup_month"]}}},
        {"$match": {"months_since": {"$gte": 0, "$lt": CELL}}},
        {"$group": {"_id": {"$add": [{"$multiply": ["$signup_month", CELL]}, "$months_since"]},
                    "active_customers": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]


def cohort_size_stages() -> list[dict]:
    """Stages on ``customers``: customers per signup month (``YYYY-MM``)."""
    return [
        {"$match": {"signup_date": {"$type": "date"}}},
        {"$group": {"_id": month_label("$signup_date"), "cohort_size": {"$sum": 1}}},
    ]


def _run_cohort_retention(store: Store, by: str | None = None) -> pd.DataFrame:
    columns = INFO.column_names()
    active = store.collection(EVENTS).aggregate(cohort_retention_stages())
    sizes = {r["_id"]: r["cohort_size"] for r in store.collection(CUSTOMERS).aggregate(cohort_size_stages())}
    records = []
    for r in active:
        signup_month, months_since = divmod(int(r["_id"]), CELL)
        cohort = f"{signup_month // 12:04d}-{signup_month % 12 + 1:02d}"
        size = sizes.get(cohort, 0)
        records.append({"cohort": cohort, "months_since": months_since, "cohort_size": size,
                        "active_customers": r["active_customers"],
                        "retention": r["active_customers"] / size if size else float("nan")})
    frame = pd.DataFrame(records, columns=columns)
    return frame.sort_values(["cohort", "months_since"], kind="stable").reset_index(drop=True)


INFO = PipelineInfo(
    "cohort_retention", "Share of each signup-month cohort purchasing N months after signup", EVENTS,
    columns={"cohort": "signup month YYYY-MM", "months_since": "calendar months from signup month to purchase month",
             "cohort_size": "customers who signed up that month", "active_customers": "of those, with an event that month",
             "retention": "active_customers / cohort_size; pivot on cohort x months_since for the triangle"},
)

PIPELINES = [Pipeline(INFO, cohort_retention_stages, _run_cohort_retention)]
