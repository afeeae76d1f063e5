"""The self-contained HTML EDA report: sections, findings and figures in one offline file.

``build_report`` writes ``index.html`` (every figure embedded as a base64 PNG
data URI, inline CSS, no scripts or external links) and each figure as a PNG
beside it. Sections whose data does not exist yet (no registered models, no
scores) say which command fills them.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from custscore.analytics import eda
from custscore.clock import now as clock_now
from custscore.errors import CustscoreError
from custscore.store.base import Store
from custscore.store.schema import DEAD_LETTERS, MODELS, PREDICTIONS, SCORER_STATE

log = logging.getLogger(__name__)

OK, EMPTY, DEGRADED = "ok", "empty", "degraded"
# event-level pipelines scan every event through mongomock on the embedded store (~50 s per 400k events, ~2 s per 16k)
EVENT_PIPELINE_MAX_EVENTS = 20_000
TRAIN_HINT = "run custscore train"
SCORE_HINT = "run custscore score"
_CSS = """body{font:14px/1.5 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #3a7;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:12px}th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f6f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}.muted{color:#666}
.status{font-size:11px;padding:1px 6px;border-radius:3px;background:#eee;margin-left:.5em}"""


@dataclass
class Section:
    """One report section: heading, status (ok / empty / degraded) and its HTML body."""

    key: str
    title: str
    status: str = OK
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        """Append an HTML fragment."""
        self.parts.append(fragment)


@dataclass
class ReportResult:
    """What ``build_report`` wrote.

    Attributes
    ----------
    path : Path
        The ``index.html`` file.
    figures : list of Path
        PNG files written beside it.
    findings : list of str
        Short sentences for a terminal summary.
    sections : dict
        Section title -> ``"ok"``, ``"empty"`` (needs a command, see the report) or ``"degraded"``.
    seconds : float
        Wall time of the build.
    """

    path: Path
    figures: list[Path]
    findings: list[str]
    sections: dict[str, str]
    seconds: float = 0.0


def _p(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>"


def _table(df: pd.DataFrame, max_rows: int = 30) -> str:
    shown = df.head(max_rows)
    out = shown.to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:,.3g}" if abs(v) < 1 else f"{v:,.2f}")
    return out + (_p(f"first {max_rows} of {len(df):,} rows", "muted") if len(df) > max_rows else "")


class _Figures:
    """Renders figures once: PNG file beside the report and base64 ``<img>`` inside it."""

    def __init__(self, out_dir: Path):
        from custscore.analytics import figures  # matplotlib/seaborn load only when a report is built

        self.lib = figures
        self.out_dir = out_dir
        self.paths: list[Path] = []

    def img(self, name: str, fig, alt: str) -> str:
        path = self.out_dir / f"{name}.png"
        data = self.lib.save_png(fig, path)
        self.paths.append(path)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _overview(ds: eda.Dataset, store: Store) -> Section:
    s = Section("overview", "Data overview")
    c = ds.customers
    facts = {"store": f"{store.backend} ({store.location})", "customers": f"{len(c):,}",
             "events": f"{ds.n_events:,}", "customers with purchases": f"{int((c['orders'] > 0).sum()):,}",
             "event date range": f"{ds.first_event} .. {ds.last_event}" if ds.first_event else "no events",
             "signup date range": f"{c['signup_date'].min()} .. {c['signup_date'].max()}",
             "recency and tenure measured at": str(ds.as_of),
             "simulated ground truth (_truth)": "yes" if ds.has_truth else "no"}
    s.add(_table(pd.DataFrame(list(facts.items()), columns=["", "value"])))
    if ds.events_sampled:
        s.add(_p(f"Event-level figures use a fixed-seed random sample of {len(ds.events):,} events.", "note"))
    s.add("<h3>Field types</h3>" + _table(eda.field_types(ds), 60))
    s.add(_p("truth_* columns are simulated ground truth, never features; score_* columns are scorer output.", "muted"))
    return s


def _quality(ds: eda.Dataset, prof: pd.DataFrame, figs: _Figures) -> Section:
    s = Section("quality", "Missing values, outliers and preprocessing")
    s.add(_p("Outliers: Tukey's IQR rule, values more than 1.5 x IQR beyond the quartiles, measured on the modelling "
             "scale (after log1p for right-skewed fields, |skewness| > 1); counts of orders, items and spend only "
             "among customers who purchased. Fences are shown back on the original scale."))
    s.add(figs.img("missing_values", figs.lib.missing_values(prof), "missing values per field"))
    s.add(figs.img("outliers", figs.lib.outliers(ds.customers, ds.events, prof), "outlier box plots"))
    cols = ["field", "unit", "missing", "missing_pct", "skew", "outliers", "outlier_pct", "lower_fence",
            "upper_fence", "transform", "imputation", "scaling", "outlier_treatment"]
    s.add("<h3>Preprocessing each field calls for</h3>" + _table(prof[cols], 60))
    return s


def _distributions(ds: eda.Dataset, figs: _Figures) -> Section:
    s = Section("distributions", "Distributions")
    s.add(figs.img("distributions", figs.lib.distributions(ds.customers), "distributions of customer fields"))
    if len(ds.events):
        amounts = ds.events["amount"].describe(percentiles=[0.5, 0.9, 0.99]).to_frame("event amount (USD)").T
        s.add(_table(amounts.reset_index(names="")))
    return s


def _correlations(corr: pd.DataFrame, figs: _Figures) -> Section:
    s = Section("correlations", "Correlations")
    s.add(_p("Spearman rank correlation (robust to the skew and outliers above), pairwise complete observations. "
             "RFM from purchase_history: recency = days from the last purchase to the last event, frequency = orders, "
             "monetary = total spent."))
    s.add(figs.img("correlations", figs.lib.correlation_heatmap(corr), "correlation heatmap"))
    return s


def _relationships(ds: eda.Dataset, figs: _Figures) -> Section:
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
            s.add(_p(f"No {alt.replace('by', 'vs')} figure: no customer has both {a} and {b}.", "note"))
    if ds.has_truth:
        table = eda.churn_by_recency(c)
        s.add(figs.img("recency_vs_churn", figs.lib.recency_vs_churn(table), "churn rate by recency"))
        s.add(_table(table))
    else:
        s.add(_p("Recency vs churn needs churn labels: only simulated data carries them (_truth).", "note"))
    return s


def _event_stats(events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """monthly_revenue and top_categories computed from loaded events (same columns as the pipelines)."""
    ev = events.assign(month=events["ts"].dt.strftime("%Y-%m"))
    monthly = ev.groupby("month").agg(revenue=("amount", "sum"), orders=("amount", "size"),
                                      active_customers=("customer_id", "nunique")).reset_index()
    cats = ev.groupby("category").agg(revenue=("amount", "sum"), orders=("amount", "size"),
                                      customers=("customer_id", "nunique")).reset_index()
    cats = cats.sort_values("revenue", ascending=False).head(10).reset_index(drop=True)
    return {"monthly_revenue": monthly.round({"revenue": 2}), "top_categories": cats.round({"revenue": 2})}


def _groups(store: Store, ds: eda.Dataset, figs: _Figures) -> Section:
    from custscore.analytics.pipelines import run_pipeline

    s = Section("groups", "Group statistics")
    runs = [("satisfaction_by_group", "region"), ("satisfaction_by_group", "channel"),
            ("satisfaction_by_income", None), ("satisfaction_by_age", None)]
    if ds.has_truth:
        runs += [("churn_by_group", "channel"), ("churn_by_group", "region")]
    if ds.n_events <= EVENT_PIPELINE_MAX_EVENTS or store.backend == "mongodb":
        runs += [("monthly_revenue", None), ("top_categories", None)]
    elif len(ds.events):
        s.add(_p(f"monthly_revenue and top_categories are computed here from the loaded events with pandas: the "
                 f"pipelines scan all {ds.n_events:,} events in Python on the {store.backend} store. "
                 "custscore stats monthly_revenue gives the same numbers.", "note"))
    tables: dict[str, pd.DataFrame] = {} if len(ds.events) == 0 else _event_stats(ds.events)
    for name, by in runs:
        try:
            tables[f"{name} by {by}" if by else name] = run_pipeline(store, name, by=by)
        except CustscoreError as exc:
            s.status = DEGRADED
            s.add(_p(f"pipeline {name} failed: {exc}", "note"))
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
    for name, table in tables.items():
        s.add(f"<h3>{html.escape(name)}</h3>" + _table(table))
    return s


def _models(store: Store) -> list[dict]:
    """Registry records as :func:`custscore.models.registry.save_model` writes them, with the manifest's
    ``extra`` (winner, leaderboard, shap_importance) read from where it is kept."""
    return [{**(doc.get("extra") or {}), **doc} for doc in store.collection(MODELS).find({})]


def _leaderboard(models: list[dict]) -> Section:
    s = Section("leaderboard", "Model leaderboard")
    if not models:
        s.status = EMPTY
        s.add(_p(f"No models registered yet: {TRAIN_HINT} to fill this section.", "note"))
        return s
    rows = []
    for doc in models:
        row = {"task": doc.get("task"), "version": doc.get("version"), "aliases": ", ".join(doc.get("aliases") or []),
               "created_at": doc.get("created_at"), "model": doc.get("model") or doc.get("estimator")}
        row.update({k: v for k, v in (doc.get("metrics") or {}).items() if isinstance(v, int | float)})
        rows.append(row)
    s.add(_table(pd.DataFrame(rows).sort_values(["task", "version"], na_position="last")))
    for doc in models:
        board = doc.get("leaderboard")
        if isinstance(board, list) and board and all(isinstance(r, dict) for r in board):
            s.add(f"<h3>{html.escape(str(doc.get('task')))} v{html.escape(str(doc.get('version')))} candidates</h3>")
            s.add(_table(pd.DataFrame(board)))
    return s


def _importance(doc: dict) -> pd.Series | None:
    """Global SHAP importance (feature -> mean |SHAP|) as the trainer stores it in ``extra.shap_importance``."""
    value = doc.get("shap_importance")
    if isinstance(value, dict) and value and all(isinstance(v, int | float) for v in value.values()):
        return pd.Series(value, dtype=float)
    return None


def _shap(models: list[dict], models_dir: Path | None, figs: _Figures) -> Section:
    s = Section("shap", "SHAP summaries")
    for doc in models:
        imp = _importance(doc)
        if imp is not None and len(imp):
            title = f"Global SHAP importance: {doc.get('task')} v{doc.get('version')}"
            s.add(figs.img(f"shap_{doc.get('task')}_v{doc.get('version')}", figs.lib.importance_bars(imp, title), title))
    pngs = sorted(Path(models_dir).rglob("*shap*.png"))[-6:] if models_dir and Path(models_dir).is_dir() else []
    # calibration: the newest reliability diagram (before/after, test split) of each churn-like task
    newest = {png.name: png for png in sorted(Path(models_dir).rglob("*_reliability.png"))} if pngs else {}
    for png in [*pngs, *newest.values()]:
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        s.add(f"<h3>{html.escape(png.name)}</h3><img src=\"{uri}\" alt=\"{html.escape(png.stem)}\">")
    if not s.parts:
        s.status = EMPTY
        s.add(_p(f"No SHAP summaries yet: {TRAIN_HINT} to fill this section.", "note"))
    return s


def _segments(ds: eda.Dataset, figs: _Figures) -> Section:
    s = Section("segments", "Segment profiles")
    c = ds.customers
    col = next((k for k in ("score_segment_name", "score_segment") if k in c and c[k].notna().any()), None)
    if col is None:
        s.status = EMPTY
        s.add(_p(f"No segments on customers yet: {TRAIN_HINT}, then {SCORE_HINT} to fill this section.", "note"))
        return s
    s.add(figs.img("segment_profiles", figs.lib.segment_profiles(c, col), "segment profiles"))
    means = c.groupby(c[col].astype(str))[[k for k in figs.lib.SEGMENT_FEATURES if k in c]].mean()
    s.add(_table(means.assign(customers=c[col].astype(str).value_counts()).reset_index(names="segment")))
    return s


def _scorer(store: Store, ds: eda.Dataset, figs: _Figures) -> Section:
    s = Section("scorer", "Scorer health")
    c = ds.customers
    if not ds.has_scores:
        s.status = EMPTY
        s.add(_p(f"No scores on customers yet: {SCORE_HINT} (after custscore train) to fill this section.", "note"))
        return s
    scored = int(c["score_churn_probability"].notna().sum())
    facts = {"customers scored": f"{scored:,} of {len(c):,} ({100 * scored / len(c):.1f}%)",
             "last scored_at": str(pd.to_datetime(c["score_scored_at"], errors="coerce").max()),
             "predictions stored": f"{store.collection(PREDICTIONS).count():,}",
             "dead letters": f"{store.collection(DEAD_LETTERS).count():,}"}
    s.add(_table(pd.DataFrame(list(facts.items()), columns=["", "value"])))
    s.add(figs.img("score_distribution", figs.lib.score_histogram(c), "scored churn probability"))
    state = [{k: v for k, v in d.items() if not isinstance(v, dict | list)} for d in store.collection(SCORER_STATE).find({})]
    if state:
        s.add("<h3>Workers and resume tokens</h3>" + _table(pd.DataFrame(state)))
    return s


def _page(sections: list[Section], findings: list[str], generated: dt.datetime) -> str:
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.key}"><h2>{html.escape(s.title)}<span class="status">{s.status}</span></h2>'
                   + "".join(s.parts) + "</section>" for s in sections)
    items = "".join(f"<li>{html.escape(f)}</li>" for f in findings)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>custscore EDA report</title>'
            f"<style>{_CSS}</style></head><body><h1>custscore EDA report</h1>"
            f'<p class="muted">generated {generated:%Y-%m-%d %H:%M:%S} UTC</p><h2>Key findings</h2><ul>{items}</ul>'
            f"<nav><ul>{toc}</ul></nav>{body}</body></html>")


def build_report(store: Store, out_dir: Path, models_dir: Path | None = None, now: dt.datetime | None = None,
                 as_of: dt.datetime | None = None) -> ReportResult:
    """Write the EDA report to ``out_dir/index.html`` with every figure also as a PNG beside it.

    Parameters
    ----------
    store : Store
        Any backend holding customers (and events).
    out_dir : Path
        Created if needed; the CLI passes ``$CUSTSCORE_HOME/reports/<timestamp>/``.
    models_dir : Path, optional
        Directory of model artifacts; ``*shap*.png`` files under it are embedded in the SHAP section.
    now : datetime, optional
        Naive UTC time stamped on the report (default: now).
    as_of : datetime, optional
        Measure recency and tenure at this time (``--as-of``) instead of the last event.

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        When the store holds no customers.
    """
    started = time.perf_counter()
    ds = eda.load_dataset(store, as_of=as_of)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prof, corr = eda.profile(ds), eda.correlations(ds.customers)
    findings = eda.findings(ds, prof, corr)
    figs = _Figures(out_dir)
    models = _models(store)
    sections = [_overview(ds, store), _quality(ds, prof, figs), _distributions(ds, figs), _correlations(corr, figs),
                _relationships(ds, figs), _groups(store, ds, figs), _segments(ds, figs), _leaderboard(models),
                _shap(models, models_dir, figs), _scorer(store, ds, figs)]
    generated = now or clock_now()
    path = out_dir / "index.html"
    path.write_text(_page(sections, findings, generated), encoding="utf-8")
    seconds = time.perf_counter() - started
    log.info("report with %d figures written to %s in %.1fs", len(figs.paths), path, seconds)
    return ReportResult(path, figs.paths, findings, {s.title: s.status for s in sections}, seconds)
