"""The EDA's prose: a few sentences on what the data shows and what it calls for."""

from __future__ import annotations

import numpy as np
import pandas as pd

from custscore.analytics.eda import Dataset
from custscore.analytics.profiling import churn_by_recency


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
