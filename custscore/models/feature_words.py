"""Feature values in plain words for reasons: ``describe("recency_days", 120) == "last purchase 120 days ago"``.

The templates of plain numbers come from the catalogue (``Feature.phrase`` in :mod:`custscore.models.feature_catalogue`);
counts ("1 order", "2 orders"), money and the few special cases are here.
"""

from __future__ import annotations

import math

from custscore.models.feature_catalogue import FEATURES, SHARE_PREFIX

_DESCRIPTIONS = {f.name: f.description for f in FEATURES}

_UNITS = {f.name: f.phrase for f in FEATURES if f.phrase}  # plain numbers; counts and money below


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
        return f"{_DESCRIPTIONS.get(name, name)} unknown"
    if name in ("region", "channel", "top_category"):
        return f"{_DESCRIPTIONS[name]} {value}"
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
