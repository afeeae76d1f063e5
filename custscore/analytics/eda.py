"""Exploratory data analysis: customers and events as DataFrames, and what the data calls for.

Loading reads each collection once with a projection of the fields the EDA
needs. ``profile`` measures every field (missing share, skewness, outliers) and
derives the preprocessing it calls for; ``findings`` turns the numbers into a
few sentences for the terminal and the report.

Outlier rule: Tukey's IQR fences (values more than 1.5 x IQR beyond the
quartiles), measured on the scale a field is modelled on, i.e. after ``log1p``
for right-skewed fields, so that a long but legitimate income tail is not
counted as outliers while values 10x off the bulk are.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.history import event_time_range
from custscore.store.schema import CUSTOMERS, EVENTS

log = logging.getLogger(__name__)

IQR_K = 1.5
SKEW_LOG = 1.0  # |skewness| above this (non-negative field) -> log1p
ROBUST_SHARE = 0.01  # outlier share above this -> robust scaling
NO_VALUES = "drop: no values"  # the imputation advice for a field no customer has
INDICATOR_SHARE = 0.05  # missing share above this -> add a missing indicator
MAX_EVENTS = 1_000_000  # beyond this, events are sampled (fixed seed) for the event-level figures

CUSTOMER_PROJECTION = {
    "customer_id": 1, "age": 1, "income": 1, "region": 1, "channel": 1, "signup_date": 1,
    "support_tickets": 1, "customer_satisfaction": 1, "purchase_history.orders": 1,
    "purchase_history.items": 1, "purchase_history.total_spent": 1, "purchase_history.first_purchase": 1,
    "purchase_history.last_purchase": 1, "purchase_history.categories": 1, "_truth.persona": 1,
    "_truth.churned_at": 1, "_truth.churn_probability": 1, "score": 1,
}
EVENT_PROJECTION = {"_id": 0, "customer_id": 1, "ts": 1, "amount": 1, "quantity": 1, "category": 1, "channel": 1}

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


@dataclass
class Dataset:
    """What the EDA works on.

    Attributes
    ----------
    customers : pandas.DataFrame
        One row per customer: public fields, flattened ``purchase_history``,
        derived RFM/tenure columns, ``truth_*`` and ``score_*`` columns when present.
    events : pandas.DataFrame
        Purchase events (all of them, or a fixed-seed sample when ``events_sampled``).
    n_events : int
        Events in the store.
    events_sampled : bool
        Whether ``events`` is a sample.
    first_event, last_event : datetime or None
        Event date range in the store.
    as_of : datetime or None
        Reference time for recency and tenure: the last event (or the last signup).
    """

    customers: pd.DataFrame
    events: pd.DataFrame
    n_events: int
    events_sampled: bool
    first_event: dt.datetime | None
    last_event: dt.datetime | None
    as_of: dt.datetime | None

    @property
    def has_truth(self) -> bool:
        """Whether simulated ground truth (``_truth``) is present."""
        return "truth_churned" in self.customers and self.customers["truth_churned"].notna().any()

    @property
    def has_scores(self) -> bool:
        """Whether the scorer has written ``score`` onto customers."""
        return "score_churn_probability" in self.customers and self.customers["score_churn_probability"].notna().any()


def _customer_row(doc: dict) -> dict:
    h = doc.get("purchase_history") or {}
    truth = doc.get("_truth")
    score = doc.get("score") or {}
    row = {k: doc.get(k) for k in ("customer_id", "age", "income", "region", "channel", "signup_date",
                                   "support_tickets", "customer_satisfaction")}
    row["customer_id"] = row["customer_id"] or doc.get("_id")
    row.update(orders=h.get("orders", 0), items=h.get("items", 0), total_spent=h.get("total_spent", 0.0),
               first_purchase=h.get("first_purchase"), last_purchase=h.get("last_purchase"),
               n_categories=len(h.get("categories") or {}))
    if isinstance(truth, dict):
        row.update(truth_persona=truth.get("persona"), truth_churned=truth.get("churned_at") is not None,
                   truth_churn_probability=truth.get("churn_probability"))
    if score:
        row.update({f"score_{k}": score.get(k) for k in ("churn_probability", "risk", "satisfaction",
                                                           "segment", "segment_name", "scored_at")})
    return row


def read_customers(store: Store) -> pd.DataFrame:
    """All customers as a DataFrame (one ``find`` with a projection), before derived columns.

    Raises
    ------
    InputError
        When the store holds no customers.
    """
    rows = [_customer_row(d) for d in store.collection(CUSTOMERS).find({}, CUSTOMER_PROJECTION)]
    if not rows:
        raise InputError("no customers yet: run custscore simulate or custscore ingest")
    df = pd.DataFrame(rows)
    for col in ("age", "income", "support_tickets", "customer_satisfaction", "orders", "items", "total_spent"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("signup_date", "first_purchase", "last_purchase"):
        df[col] = pd.to_datetime(df[col], errors="coerce")
    if "truth_churned" in df:
        df["truth_churned"] = df["truth_churned"].astype("boolean")
    return df


def read_events(store: Store, max_events: int = MAX_EVENTS, seed: int = 0) -> tuple[pd.DataFrame, int, bool]:
    """Events as a DataFrame; a fixed-seed Bernoulli sample of about ``max_events`` when there are more.

    Returns
    -------
    (events, n_events, sampled)
    """
    coll = store.collection(EVENTS)
    total = coll.count()
    keep = 1.0 if total <= max_events else max_events / total
    rng = np.random.default_rng(seed)
    rows = [d for d in coll.find({}, EVENT_PROJECTION) if keep >= 1.0 or rng.random() < keep]
    df = pd.DataFrame(rows, columns=list(k for k in EVENT_PROJECTION if k != "_id"))
    df["ts"] = pd.to_datetime(df["ts"], errors="coerce")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce").astype(float)
    return df, total, keep < 1.0


def load_dataset(store: Store, max_events: int = MAX_EVENTS, seed: int = 0, as_of: dt.datetime | None = None) -> Dataset:
    """Customers (with derived RFM and tenure columns) and events, ready for the EDA.

    ``as_of`` (``report --as-of``) measures recency and tenure at that time instead of the
    last event; it may not lie before the last event (the summaries hold every event).
    """
    customers = read_customers(store)
    events, n_events, sampled = read_events(store, max_events, seed)
    first, last = event_time_range(store) if n_events else (None, None)
    if as_of is not None and last is not None and as_of < last:
        raise InputError(f"--as-of {as_of:%Y-%m-%d} is before the newest event ({last:%Y-%m-%d}); the report "
                         f"measures at a date on or after it: use --as-of {last:%Y-%m-%d} or later")
    as_of = as_of or last or (customers["signup_date"].max() if customers["signup_date"].notna().any() else None)
    as_of = pd.Timestamp(as_of).to_pydatetime() if as_of is not None else None
    add_derived(customers, as_of)
    log.info("loaded %d customers and %d of %d events", len(customers), len(events), n_events)
    return Dataset(customers, events, n_events, sampled, first, last, as_of)


def add_derived(customers: pd.DataFrame, as_of: dt.datetime | None) -> pd.DataFrame:
    """Add RFM (recency_days, orders, total_spent), avg_order_value and tenure_days in place."""
    ref = pd.Timestamp(as_of) if as_of is not None else pd.NaT
    day = pd.Timedelta(days=1)
    customers["recency_days"] = (ref - customers["last_purchase"]) / day
    customers["tenure_days"] = ((ref - customers["signup_date"]) / day).clip(lower=0)
    orders = customers["orders"].where(customers["orders"] > 0)
    customers["avg_order_value"] = customers["total_spent"] / orders
    customers["n_categories"] = customers["n_categories"].astype(float)
    return customers


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


def _rho(customers: pd.DataFrame, a: str, b: str) -> float:
    pair = customers[[a, b]].dropna()
    # ranks + Pearson = Spearman without scipy
    return float(pair[a].rank().corr(pair[b].rank())) if len(pair) > 2 else float("nan")


def findings(ds: Dataset, prof: pd.DataFrame, corr: pd.DataFrame | None = None) -> list[str]:
    """A few sentences on what the data shows and what it calls for."""
    c = ds.customers
    out = [f"{len(c):,} customers and {ds.n_events:,} events"
           + (f" from {ds.first_event:%Y-%m-%d} to {ds.last_event:%Y-%m-%d}" if ds.first_event else "")]
    missing = prof[(prof["missing"] > 0) & prof["role"].isin(["feature", "target"])]
    missing = missing[~missing["field"].isin(["recency_days", "avg_order_value"])].sort_values("missing_pct")
    empty = missing[missing["non_null"] == 0]
    missing = missing[missing["non_null"] > 0]
    if len(empty):
        fields = ", ".join(empty["field"])
        out.append(f"no values at all in {len(empty)} {'field' if len(empty) == 1 else 'fields'} ({fields}): "
                   "drop them (training drops them itself); ingest the columns to use them")
    if len(missing):
        worst = missing.iloc[-1]
        out.append(f"missing values in {len(missing)} fields, at most {worst['missing_pct']:.1f}% "
                   f"({worst['field']}): impute median (numeric) / 'unknown' (categorical)")
    elif not len(empty):
        out.append("no missing values in the profile fields")
    skewed = prof[prof["transform"] == "log1p"].sort_values("skew", ascending=False)
    if len(skewed):
        shown = ", ".join(f"{r.field} ({r.skew:+.1f})" for r in skewed.head(4).itertuples())
        out.append(f"right-skewed, log1p before scaling: {shown}")
    outl = prof[prof["outliers"] > 0].sort_values("outlier_pct", ascending=False)
    if len(outl):
        shown = ", ".join(f"{r.field} {r.outlier_pct:.1f}%" for r in outl.head(4).itertuples())
        out.append(f"outliers by the IQR rule (1.5x IQR, modelling scale): {shown}; clip to the fences")
    for a, b, what in (("income", "customer_satisfaction", "income vs satisfaction"),
                       ("support_tickets", "customer_satisfaction", "support tickets vs satisfaction")):
        rho = _rho(c, a, b)
        if not np.isnan(rho):
            out.append(f"{what}: Spearman rho {rho:+.2f}")
    if corr is not None and len(corr) > 1:
        pairs = corr.where(np.triu(np.ones(corr.shape, dtype=bool), 1)).stack().dropna()
        if len(pairs):
            (a, b), rho = max(pairs.items(), key=lambda kv: abs(kv[1]))
            note = "; nearly collinear, keep one for linear models" if abs(rho) > 0.9 else ""
            out.append(f"strongest feature correlation: {a} vs {b} (rho {rho:+.2f}{note})")
    if ds.has_truth:
        table = churn_by_recency(c)
        rate = float(c["truth_churned"].astype(float).mean())
        table = table[table["recency"] != "never"]
        if len(table) > 1:
            first, last = table.iloc[0], table.iloc[-1]
            out.append(f"ground-truth churn {100 * rate:.1f}%: {100 * first.churn_rate:.0f}% at {first.recency} days "
                       f"since the last purchase vs {100 * last.churn_rate:.0f}% at {last.recency} days")
    if ds.events_sampled:
        out.append(f"event-level figures use a fixed-seed sample of {len(ds.events):,} of {ds.n_events:,} events")
    return out
