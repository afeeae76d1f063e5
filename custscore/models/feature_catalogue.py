"""The feature catalogue: every model input's name, kind, meaning, log scaling and how its value reads.

This module says *what* the features are; :mod:`custscore.models.features` computes them,
:mod:`custscore.models.feature_words` words their values and the registry manifest records
:func:`feature_schema`. Per-category share features (``share_<category>``) are named here too; the set of
categories is fixed at training time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """One model input: its name, kind ('num' or 'cat'), what it means, whether it is log-scaled, how a value reads.

    ``phrase`` is the reasons' template of a plain number (``"{v:.0f} years old"``); counts, money and the other
    special cases are worded in :mod:`custscore.models.feature_words`.
    """

    name: str
    kind: str
    description: str
    log: bool = False
    phrase: str = ""


FEATURES: list[Feature] = [
    Feature("age", "num", "age in years", phrase="{v:.0f} years old"),
    Feature("income", "num", "annual income", log=True),
    Feature("region", "cat", "region"),
    Feature("channel", "cat", "preferred channel"),
    Feature("support_tickets", "num", "support tickets raised", log=True),
    Feature("customer_satisfaction", "num", "last survey satisfaction (1-10)", phrase="survey satisfaction {v:.0f}/10"),
    Feature("tenure_days", "num", "days since signup"),
    Feature("tickets_per_year", "num", "support tickets per year of tenure", log=True,
            phrase="{v:.1f} support tickets a year"),
    Feature("recency_days", "num", "days since the last purchase", log=True),
    Feature("orders_total", "num", "orders to date", log=True),
    Feature("orders_30d", "num", "orders in the last 30 days", log=True),
    Feature("orders_90d", "num", "orders in the last 90 days", log=True),
    Feature("orders_365d", "num", "orders in the last 365 days", log=True),
    Feature("spend_total", "num", "money spent to date", log=True),
    Feature("spend_mean", "num", "average order value", log=True),
    Feature("spend_std", "num", "spread of order values", log=True),
    Feature("items_per_order", "num", "items per order", log=True, phrase="{v:.1f} items per order"),
    Feature("trend_30d", "num", "orders in the last 30 days against the 90 days before (log ratio)"),
    Feature("trend_90d", "num", "orders in the last 90 days against the 275 days before (log ratio)"),
    Feature("gap_mean_days", "num", "average days between orders", log=True),
    Feature("overdue_ratio", "num", "days since last purchase over the usual gap between orders", log=True,
            phrase="{v:.1f}x the usual gap since last order"),
    Feature("category_count", "num", "distinct categories bought"),
    Feature("category_entropy", "num", "how evenly spending spreads over categories", phrase="category spread {v:.2f}"),
    Feature("top_category", "cat", "most bought category"),
    Feature("orders_per_month", "num", "orders per month of tenure in the event window", log=True,
            phrase="{v:.1f} orders a month"),
    Feature("spend_per_month", "num", "spend per month of tenure in the event window", log=True),
    Feature("age_x_income", "num", "age times income (thousands)", log=True, phrase="age x income {v:,.0f}k"),
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
