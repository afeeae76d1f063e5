"""Pipelines over ``customers``: satisfaction by age, income and group; churn by group; score distribution."""

from __future__ import annotations

import logging
import math

import pandas as pd

from custscore.analytics.pipelines.common import (
    Buckets,
    Pipeline,
    PipelineInfo,
    bucket_frame,
    bucket_stage,
    count_present,
    group_frame,
    is_missing,
)
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS

log = logging.getLogger(__name__)

AGE_BUCKETS = Buckets((0, 18, 25, 35, 45, 55, 65), ("0-18", "18-25", "25-35", "35-45", "45-55", "55-65", "65+"))
INCOME_BUCKETS = Buckets(
    (0, 25_000, 50_000, 75_000, 100_000, 150_000), ("0-25k", "25k-50k", "50k-75k", "75k-100k", "100k-150k", "150k+")
)
# fixed-width tenths of the probability scale; the last one is closed so that 1.0 belongs to it
DECILES = Buckets(tuple(round(i / 10, 1) for i in range(10)), tuple(f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)))
DECILE_BOUNDARIES = [*DECILES.boundaries()[:-1], math.nextafter(1.0, 2.0)]
GROUP_FIELDS = ("region", "channel")
SATISFACTION = "$customer_satisfaction"
TRUTH_LABEL = "_truth.churned_at"
USER_LABEL = "label_churn"

_SAT_COLUMNS = {
    "customers": "customers in the group",
    "with_satisfaction": "customers whose customer_satisfaction is not null/missing",
    "mean_satisfaction": "mean customer_satisfaction over those (NaN when none)",
}


def _satisfaction_output() -> dict:
    return {"customers": {"$sum": 1}, "with_satisfaction": count_present(SATISFACTION),
            "mean_satisfaction": {"$avg": SATISFACTION}}


def satisfaction_by_age_stages(by: str | None = None) -> list[dict]:
    """Stages: ``$bucket`` customers on age (18-25, ..., 65+, plus 0-18 and missing)."""
    return [bucket_stage("$age", AGE_BUCKETS, _satisfaction_output())]


def satisfaction_by_income_stages(by: str | None = None) -> list[dict]:
    """Stages: ``$bucket`` customers on income brackets (0-25k, ..., 150k+, missing)."""
    return [bucket_stage("$income", INCOME_BUCKETS, _satisfaction_output())]


def satisfaction_by_group_stages(by: str | None = "region") -> list[dict]:
    """Stages: ``$group`` customers on ``by`` (region or channel)."""
    return [{"$group": {"_id": f"${by}", **_satisfaction_output()}}]


def _run_bucketed(stages_of, buckets: Buckets, info_name: str):
    def run(store: Store, by: str | None = None) -> pd.DataFrame:
        info = INFOS[info_name]
        rows = store.collection(CUSTOMERS).aggregate(stages_of(by))
        return bucket_frame(rows, buckets, info.column_names()[0], info.column_names())

    return run


def _run_satisfaction_by_group(store: Store, by: str | None = "region") -> pd.DataFrame:
    rows = store.collection(CUSTOMERS).aggregate(satisfaction_by_group_stages(by))
    return group_frame(rows, by, INFOS["satisfaction_by_group"].column_names(by))


# -- churn ------------------------------------------------------------------------
def churn_by_group_stages(by: str | None = "region", label: str = TRUTH_LABEL) -> list[dict]:
    """Stages: churn rate per ``by`` value (region, channel) or age bucket (``by="age_bucket"``).

    ``label="_truth.churned_at"`` (simulated data): customers with a ``_truth``
    document; churned means ``_truth.churned_at`` is not null. ``label="label_churn"``
    (user data): customers whose ``label_churn`` is not null; churned means it is
    truthy (true or non-zero).
    """
    if label == TRUTH_LABEL:
        match = {"_truth": {"$type": "object"}}
        churned = {"$cond": [is_missing(f"${TRUTH_LABEL}"), 0, 1]}
    else:
        match = {label: {"$ne": None}}
        churned = {"$cond": [f"${label}", 1, 0]}
    output = {"customers": {"$sum": 1}, "churned": {"$sum": churned}}
    group = bucket_stage("$age", AGE_BUCKETS, output) if by == "age_bucket" else {"$group": {"_id": f"${by}", **output}}
    return [{"$match": match}, group, {"$addFields": {"churn_rate": {"$divide": ["$churned", "$customers"]}}}]


def churn_label_source(store: Store) -> str | None:
    """Which churn label the store has: ``"_truth.churned_at"``, ``"label_churn"`` or None."""
    coll = store.collection(CUSTOMERS)
    if coll.find_one({"_truth": {"$type": "object"}}, {"_id": 1}) is not None:
        return TRUTH_LABEL
    if coll.find_one({USER_LABEL: {"$ne": None}}, {"_id": 1}) is not None:
        return USER_LABEL
    return None


def _run_churn_by_group(store: Store, by: str | None = "region") -> pd.DataFrame:
    columns = INFOS["churn_by_group"].column_names(by)
    label = churn_label_source(store)
    if label is None:
        log.warning("churn_by_group: no customer has _truth (simulated data) or a %s field; "
                    "load churn labels as %s (true/false) to get churn rates", USER_LABEL, USER_LABEL)
        frame = pd.DataFrame(columns=columns)
    else:
        rows = store.collection(CUSTOMERS).aggregate(churn_by_group_stages(by, label))
        frame = bucket_frame(rows, AGE_BUCKETS, by, columns) if by == "age_bucket" else group_frame(rows, by, columns)
    frame.attrs["label_source"] = label
    return frame


# -- score ------------------------------------------------------------------------
def score_distribution_stages(by: str | None = None) -> list[dict]:
    """Stages: one ``$facet`` with counts by ``score.risk`` and by tenth of ``score.churn_probability``."""
    output = {"customers": {"$sum": 1}, "mean_churn_probability": {"$avg": "$score.churn_probability"}}
    deciles = bucket_stage("$score.churn_probability", DECILES, output)
    deciles["$bucket"]["boundaries"] = DECILE_BOUNDARIES
    return [
        {"$match": {"score": {"$type": "object"}}},
        {"$facet": {"risk": [{"$group": {"_id": "$score.risk", **output}}], "churn_probability": [deciles]}},
    ]


def _run_score_distribution(store: Store, by: str | None = None) -> pd.DataFrame:
    columns = INFOS["score_distribution"].column_names()
    rows = store.collection(CUSTOMERS).aggregate(score_distribution_stages())
    facets = rows[0] if rows else {}
    risk = group_frame(facets.get("risk", []), "bucket", columns[1:])
    deciles = bucket_frame(facets.get("churn_probability", []), DECILES, "bucket", columns[1:])
    parts = [part.assign(dimension=name) for name, part in (("risk", risk), ("churn_probability", deciles)) if len(part)]
    if not parts:
        log.info("score_distribution: no customer has a score yet; run the scorer first")
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


INFOS = {
    "satisfaction_by_age": PipelineInfo(
        "satisfaction_by_age", "Customers and mean satisfaction per age bucket (18-25 ... 65+)", CUSTOMERS,
        columns={"age_bucket": "0-18, 18-25, 25-35, 35-45, 45-55, 55-65, 65+, missing (null/missing age)",
                 **_SAT_COLUMNS}),
    "satisfaction_by_income": PipelineInfo(
        "satisfaction_by_income", "Customers and mean satisfaction per income bracket (0-25k ... 150k+)", CUSTOMERS,
        columns={"income_bracket": "0-25k, 25k-50k, 50k-75k, 75k-100k, 100k-150k, 150k+, missing", **_SAT_COLUMNS}),
    "satisfaction_by_group": PipelineInfo(
        "satisfaction_by_group", "Customers and mean satisfaction per region or channel", CUSTOMERS,
        by=GROUP_FIELDS, default_by="region",
        columns={"{by}": "the group value; a missing value (NaN/None) for null/missing, last row",
                 **_SAT_COLUMNS}),
    "churn_by_group": PipelineInfo(
        "churn_by_group", "Churn rate per region, channel or age bucket (simulated truth or label_churn)", CUSTOMERS,
        by=(*GROUP_FIELDS, "age_bucket"), default_by="region",
        columns={"{by}": "the group value (NaN/None = null/missing) or the age bucket label",
                 "customers": "labelled customers in the group",
                 "churned": "of those, churned (_truth.churned_at not null, or label_churn truthy)",
                 "churn_rate": "churned / customers"}),
    "score_distribution": PipelineInfo(
        "score_distribution", "Scored customers by score.risk and by tenth of score.churn_probability", CUSTOMERS,
        columns={"dimension": "'risk' or 'churn_probability'",
                 "bucket": "risk level (NaN/None = missing), or probability range 0.0-0.1 ... 0.9-1.0 / missing / other",
                 "customers": "scored customers in the bucket",
                 "mean_churn_probability": "mean score.churn_probability in the bucket"}),
}

PIPELINES = [
    Pipeline(INFOS["satisfaction_by_age"], satisfaction_by_age_stages,
             _run_bucketed(satisfaction_by_age_stages, AGE_BUCKETS, "satisfaction_by_age")),
    Pipeline(INFOS["satisfaction_by_income"], satisfaction_by_income_stages,
             _run_bucketed(satisfaction_by_income_stages, INCOME_BUCKETS, "satisfaction_by_income")),
    Pipeline(INFOS["satisfaction_by_group"], satisfaction_by_group_stages, _run_satisfaction_by_group),
    Pipeline(INFOS["churn_by_group"], churn_by_group_stages, _run_churn_by_group),
    Pipeline(INFOS["score_distribution"], score_distribution_stages, _run_score_distribution),
]
