"""Profiling: every field's missing share, skewness and IQR outliers, and the preprocessing each calls for.

Outlier rule: Tukey's IQR fences (values more than 1.5 x IQR beyond the
quartiles), measured on the scale a field is modelled on, i.e. after ``log1p``
for right-skewed fields, so that a long but legitimate income tail is not
counted as outliers while values 10x off the bulk are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from custscore.analytics.eda import Dataset

IQR_K = 1.5
SKEW_LOG = 1.0  # |skewness| above this (non-negative field) -> log1p
ROBUST_SHARE = 0.01  # outlier share above this -> robust scaling
NO_VALUES = "drop: no values"  # the imputation advice for a field no customer has
INDICATOR_SHARE = 0.05  # missing share above this -> add a missing indicator
# field -> (unit label, role); role "target" fields get no imputation for training rows
NUMERIC_FIELDS: dict[str, tuple[str, str]] = {
    "age": ("years", "feature"),
    "income": ("USD/year", "feature"),
    "support_tickets": ("tickets", "feature"),
    "customer_satisfaction": ("score 1-10", "target"),
    "orders": ("orders", "feature"),
    "items": ("items", "feature"),
    "total_spent": ("USD", "feature"),
    "avg_order_value": ("USD/order", "feature"),
    "recency_days": ("days", "feature"),
    "tenure_days": ("days", "feature"),
    "n_categories": ("categories", "feature"),
}
CATEGORICAL_FIELDS = ("region", "channel")
BOUNDED = {"customer_satisfaction"}  # a 1..10 scale has no outliers, only extremes
# zero for every customer who never purchased: outliers are measured among purchasers only
PURCHASER_ONLY = {"orders", "items", "total_spent", "n_categories"}


def iqr_fences(values: pd.Series, k: float = IQR_K) -> tuple[float, float]:
    """Tukey fences ``(q1 - k IQR, q3 + k IQR)`` of the non-missing values."""
    q1, q3 = values.quantile([0.25, 0.75])
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))


def _numeric_profile(name: str, values: pd.Series, n: int, among: pd.Series | None = None) -> dict:
    unit, role = NUMERIC_FIELDS.get(name, ("", "feature"))
    present = values.dropna()
    missing = int(n - len(present))
    if among is not None:
        present = values[among].dropna()
    skew = float(present.skew()) if len(present) > 2 else 0.0
    skew = 0.0 if np.isnan(skew) else skew
    log_it = name not in BOUNDED and abs(skew) > SKEW_LOG and len(present) and present.min() >= 0
    scale = np.log1p(present) if log_it else present
    if name in BOUNDED or len(present) < 4:
        lo = hi = float("nan")
        n_out = 0
    else:
        lo, hi = iqr_fences(scale)
        n_out = int(((scale < lo) | (scale > hi)).sum())
    lo_raw, hi_raw = (float(np.expm1(lo)), float(np.expm1(hi))) if log_it else (lo, hi)
    if len(present) and present.min() >= 0 and lo_raw < 0:
        lo_raw = 0.0  # a fence below zero on a non-negative field flags nothing
    return dict(field=name, kind="numeric", unit=unit, role=role, non_null=n - missing, missing=missing,
                missing_pct=100.0 * missing / n if n else 0.0, skew=round(skew, 2), outliers=n_out,
                outlier_pct=100.0 * n_out / len(present) if len(present) else 0.0,
                lower_fence=lo_raw, upper_fence=hi_raw, transform="log1p" if log_it else "none")


def _categorical_profile(name: str, values: pd.Series, n: int) -> dict:
    present = values.dropna()
    missing = int(n - len(present))
    return dict(field=name, kind="categorical", unit=f"{present.nunique()} levels", role="feature",
                non_null=len(present), missing=missing, missing_pct=100.0 * missing / n if n else 0.0,
                skew=float("nan"), outliers=0, outlier_pct=0.0, lower_fence=float("nan"),
                upper_fence=float("nan"), transform="none")


def _imputation(row: dict) -> str:
    name, share = row["field"], row["missing_pct"] / 100.0
    if row["non_null"] == 0 and row["role"] != "event":
        return NO_VALUES
    if row["kind"] == "categorical":
        rule = "own 'unknown' level"
    elif name == "recency_days":
        rule = "never purchased: fill with tenure_days + 'no purchase' indicator"
    elif name == "avg_order_value":
        rule = "no orders: fill 0 + 'no purchase' indicator"
    elif row["role"] == "target":
        rule = "as target: drop unlabelled rows; as feature: median"
    elif row["missing"] == 0:
        return "none needed"
    else:
        rule = "median"
    if share > INDICATOR_SHARE and name not in ("recency_days", "avg_order_value"):
        rule += " + missing indicator"
    return rule if row["missing"] or row["kind"] != "numeric" else "none needed"


def _scaling(row: dict) -> str:
    if row["non_null"] == 0:
        return "none (no values)"
    if row["kind"] == "categorical":
        return "one-hot"
    if row["outlier_pct"] / 100.0 > ROBUST_SHARE:
        return "robust (median/IQR)"
    return "standard (z-score)"


def _outlier_treatment(row: dict) -> str:
    if row["outliers"] == 0:
        return "none"
    return "clip to IQR fences" + (" (log scale)" if row["transform"] == "log1p" else "")


def profile(ds: Dataset) -> pd.DataFrame:
    """Per field: missing share, skewness, IQR outliers and the preprocessing each calls for."""
    c, n = ds.customers, len(ds.customers)
    buyers = c["orders"] > 0
    rows = [_numeric_profile(f, c[f], n, buyers if f in PURCHASER_ONLY else None) for f in NUMERIC_FIELDS if f in c]
    rows += [_categorical_profile(f, c[f], n) for f in CATEGORICAL_FIELDS if f in c]
    if len(ds.events):
        ev = _numeric_profile("event amount", ds.events["amount"], len(ds.events))
        ev.update(unit="USD/event", role="event")
        rows.append(ev)
    for row in rows:
        row.update(imputation=_imputation(row), scaling=_scaling(row), outlier_treatment=_outlier_treatment(row))
    return pd.DataFrame(rows)


def field_types(ds: Dataset) -> pd.DataFrame:
    """Field name, stored type and non-missing count of the customer and event columns."""
    rows = [("customers", col, str(dtype), int(ds.customers[col].notna().sum()))
            for col, dtype in ds.customers.dtypes.items()]
    rows += [("events", col, str(dtype), int(ds.events[col].notna().sum())) for col, dtype in ds.events.dtypes.items()]
    return pd.DataFrame(rows, columns=["collection", "field", "type", "non_null"])


def churn_by_recency(customers: pd.DataFrame) -> pd.DataFrame:
    """Ground-truth churn rate per recency bucket (simulated data only; empty without ``_truth``)."""
    if "truth_churned" not in customers:
        return pd.DataFrame(columns=["recency", "customers", "churn_rate"])
    edges = [0, 30, 60, 90, 180, 365, np.inf]
    labels = ["0-30", "30-60", "60-90", "90-180", "180-365", ">365"]
    bucket = pd.cut(customers["recency_days"], edges, labels=labels, right=False).astype(object)
    bucket = bucket.where(customers["recency_days"].notna(), "never")
    churned = customers["truth_churned"].astype(float)
    out = churned.groupby(bucket).agg(["size", "mean"]).reindex(labels + ["never"]).dropna(how="all")
    return out.rename(columns={"size": "customers", "mean": "churn_rate"}).rename_axis("recency").reset_index()


CORRELATION_COLUMNS = {
    "age": "age", "income": "income", "support_tickets": "support tickets",
    "customer_satisfaction": "satisfaction", "tenure_days": "tenure", "recency_days": "recency (R)",
    "orders": "frequency (F)", "total_spent": "monetary (M)", "avg_order_value": "avg order value",
    "items": "items", "n_categories": "categories",
}


def correlations(customers: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlations of the numeric customer features, RFM included (pairwise complete)."""
    cols = [c for c in CORRELATION_COLUMNS if c in customers and customers[c].notna().sum() > 2]
    return customers[cols].corr(method="spearman").rename(index=CORRELATION_COLUMNS, columns=CORRELATION_COLUMNS)
