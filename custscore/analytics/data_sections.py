"""The report's data sections: overview, quality, distributions, correlations, relationships, groups,
segments and scorer health. Each takes the loaded :class:`~custscore.analytics.eda.Dataset` and returns a
:class:`~custscore.analytics.page.Section`.
"""

from __future__ import annotations

import pandas as pd

from custscore.analytics import eda, profiling
from custscore.analytics.page import DEGRADED, SCORE_HINT, TRAIN_HINT, Figures, Section, heading, paragraph, table
from custscore.errors import CustscoreError
from custscore.store.base import Store


def overview(ds: eda.Dataset, store: Store) -> Section:
    """Counts, date ranges, field types."""
    s = Section("overview", "Data overview")
    c = ds.customers
    facts = {"store": f"{store.backend} ({store.location})", "customers": f"{len(c):,}",
             "events": f"{ds.n_events:,}", "customers with purchases": f"{int((c['orders'] > 0).sum()):,}",
             "event date range": f"{ds.first_event} .. {ds.last_event}" if ds.first_event else "no events",
             "signup date range": f"{c['signup_date'].min()} .. {c['signup_date'].max()}",
             "recency and tenure measured at": str(ds.as_of),
             "simulated ground truth (_truth)": "yes" if ds.has_truth else "no"}
    s.add(table(pd.DataFrame(list(facts.items()), columns=["", "value"])))
    if ds.events_sampled:
        s.add(paragraph(f"Event-level figures use a fixed-seed random sample of {len(ds.events):,} events.", "note"))
    s.add("<h3>Field types</h3>" + table(profiling.field_types(ds), 60))
    s.add(paragraph("truth_* columns are simulated ground truth, never features; score_* columns are scorer output.", "muted"))
    return s


def quality(ds: eda.Dataset, prof: pd.DataFrame, figs: Figures) -> Section:
    """Missing values and outliers per field, and the preprocessing each calls for."""
    s = Section("quality", "Missing values, outliers and preprocessing")
    s.add(paragraph("Outliers: Tukey's IQR rule, values more than 1.5 x IQR beyond the quartiles, measured on the modelling "
             "scale (after log1p for right-skewed fields, |skewness| > 1); counts of orders, items and spend only "
             "among customers who purchased. Fences are shown back on the original scale."))
    s.add(figs.img("missing_values", figs.lib.missing_values(prof), "missing values per field"))
    s.add(figs.img("outliers", figs.lib.outliers(ds.customers, ds.events, prof), "outlier box plots"))
    cols = ["field", "unit", "missing", "missing_pct", "skew", "outliers", "outlier_pct", "lower_fence",
            "upper_fence", "transform", "imputation", "scaling", "outlier_treatment"]
    s.add("<h3>Preprocessing each field calls for</h3>" + table(prof[cols], 60))
    return s


def distributions(ds: eda.Dataset, figs: Figures) -> Section:
    """Histograms of the customer fields and the event amounts."""
    s = Section("distributions", "Distributions")
    s.add(figs.img("distributions", figs.lib.distributions(ds.customers), "distributions of customer fields"))
    if len(ds.events):
        amounts = ds.events["amount"].describe(percentiles=[0.5, 0.9, 0.99]).to_frame("event amount (USD)").T
        s.add(table(amounts.reset_index(names="")))
    return s


def correlations(corr: pd.DataFrame, figs: Figures) -> Section:
    """The Spearman heatmap."""
    s = Section("correlations", "Correlations")
    s.add(paragraph("Spearman rank correlation (robust to the skew and outliers above), pairwise complete observations. "
             "RFM from purchase_history: recency = days from the last purchase to the last event, frequency = orders, "
             "monetary = total spent."))
    s.add(figs.img("correlations", figs.lib.correlation_heatmap(corr), "correlation heatmap"))
    return s


def relationships(ds: eda.Dataset, figs: Figures) -> Section:
    """Income and tickets against satisfaction; recency against churn (simulated truth)."""
    s = Section("relationships", "Key relationships")
    c = ds.customers
    for name, (a, b), draw, alt in (
            ("income_vs_satisfaction", ("income", "customer_satisfaction"), figs.lib.income_vs_satisfaction,
             "income by satisfaction"),
            ("tickets_vs_satisfaction", ("support_tickets", "customer_satisfaction"), figs.lib.tickets_vs_satisfaction,
             "satisfaction by support tickets")):
        if figs.lib.has_values(c, a, b):
            s.add(figs.img(name, draw(c), alt))
        else:  # an empty figure says less than one line
            s.add(paragraph(f"No {alt.replace('by', 'vs')} figure: no customer has both {a} and {b}.", "note"))
    if ds.has_truth:
        by_recency = profiling.churn_by_recency(c)
        s.add(figs.img("recency_vs_churn", figs.lib.recency_vs_churn(by_recency), "churn rate by recency"))
        s.add(table(by_recency))
    else:
        s.add(paragraph("Recency vs churn needs churn labels: only simulated data carries them (_truth).", "note"))
    return s


def groups(store: Store, ds: eda.Dataset, figs: Figures) -> Section:
    """The named pipelines' group statistics, as tables and bar panels."""
    from custscore.analytics.pipelines import run_pipeline

    s = Section("groups", "Group statistics")
    runs = [("satisfaction_by_group", "region"), ("satisfaction_by_group", "channel"),
            ("satisfaction_by_income", None), ("satisfaction_by_age", None)]
    if ds.has_truth:
        runs += [("churn_by_group", "channel"), ("churn_by_group", "region")]
    if len(ds.events):  # the named pipelines themselves: the numbers custscore stats prints
        runs += [("monthly_revenue", None), ("top_categories", None)]
    tables: dict[str, pd.DataFrame] = {}
    for name, by in runs:
        try:
            tables[f"{name} by {by}" if by else name] = run_pipeline(store, name, by=by)
        except CustscoreError as exc:
            s.status = DEGRADED
            s.add(paragraph(f"pipeline {name} failed: {exc}", "note"))
    sat = "mean satisfaction (score 1-10)"
    specs = [("satisfaction_by_group by region", "region", "by region"),
             ("satisfaction_by_group by channel", "channel", "by channel"),
             ("satisfaction_by_income", "income_bracket", "by income (USD/year)"),
             ("satisfaction_by_age", "age_bucket", "by age (years)")]
    panels = [(tables[k], x, "mean_satisfaction", t, sat) for k, x, t in specs
              if k in tables and figs.lib.panel_has_values(tables[k], "mean_satisfaction")]
    if panels:
        s.add(figs.img("satisfaction_by_group", figs.lib.bar_panels(panels, "Mean satisfaction by group"),
                       "satisfaction by group"))
    churn = [(tables[f"churn_by_group by {b}"], b, "churn_rate", f"by {b}", "churn rate (share of customers)")
             for b in ("channel", "region") if f"churn_by_group by {b}" in tables]
    if churn:
        s.add(figs.img("churn_by_group", figs.lib.bar_panels(churn, "Churn rate by group (ground truth)"), "churn by group"))
    if "monthly_revenue" in tables and len(tables["monthly_revenue"]):
        fig = figs.lib.time_series(tables["monthly_revenue"], "month", "revenue", "Monthly revenue", "revenue (USD/month)")
        s.add(figs.img("monthly_revenue", fig, "monthly revenue"))
    for name, frame in tables.items():
        s.add(heading(name) + table(frame))
    return s


def segments(ds: eda.Dataset, figs: Figures) -> Section:
    """Scored segments: sizes and feature means."""
    s = Section("segments", "Segment profiles")
    c = ds.customers
    col = next((k for k in ("score_segment_name", "score_segment") if k in c and c[k].notna().any()), None)
    if col is None:
        return s.empty(f"No segments on customers yet: {TRAIN_HINT}, then {SCORE_HINT} to fill this section.")
    s.add(figs.img("segment_profiles", figs.lib.segment_profiles(c, col), "segment profiles"))
    means = c.groupby(c[col].astype(str))[[k for k in figs.lib.SEGMENT_FEATURES if k in c]].mean()
    s.add(table(means.assign(customers=c[col].astype(str).value_counts()).reset_index(names="segment")))
    return s


def scorer(ds: eda.Dataset, figs: Figures, health: dict | None = None) -> Section:
    """How many customers are scored; with ``health`` (scorer.health.scorer_health), dead letters and workers."""
    s = Section("scorer", "Scorer health")
    c = ds.customers
    if not ds.has_scores:
        return s.empty(f"No scores on customers yet: {SCORE_HINT} (after custscore train) to fill this section.")
    scored = int(c["score_churn_probability"].notna().sum())
    facts = {"customers scored": f"{scored:,} of {len(c):,} ({100 * scored / len(c):.1f}%)",
             "last scored_at": str(pd.to_datetime(c["score_scored_at"], errors="coerce").max())}
    if health is not None:
        facts |= {"predictions stored": f"{health['predictions']:,}", "dead letters": f"{health['dead_letters']:,}"}
    s.add(table(pd.DataFrame(list(facts.items()), columns=["", "value"])))
    s.add(figs.img("score_distribution", figs.lib.score_histogram(c), "scored churn probability"))
    if health is not None and health["workers"]:
        s.add("<h3>Workers</h3>" + table(pd.DataFrame(health["workers"])))
    return s
