"""EDA figures: each function takes DataFrames and returns a matplotlib Figure.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``
on an Agg canvas), never registered with pyplot, so nothing leaks between
calls; :func:`save_png` renders one to PNG bytes, writes it and clears it.
The Agg backend is selected here, when this module is imported, never when
the ``custscore`` package is.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from custscore.analytics.profiling import IQR_K, iqr_fences  # noqa: E402

DPI = 100
PALETTE = "crest"
_STYLE = {"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
          "axes.titlesize": 12, "axes.labelsize": 10, "figure.titlesize": 14}


def new_figure(width: float = 9.0, height: float = 5.0, nrows: int = 1, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    """A figure on its own Agg canvas (not known to pyplot) and its axes as a flat array."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG bytes (tight layout, so labels do not overlap)."""
    import io

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_png(fig: Figure, path: Path) -> bytes:
    """Write the figure to ``path`` as PNG, release it, and return the PNG bytes."""
    data = png_bytes(fig)
    Path(path).write_bytes(data)
    fig.clear()
    return data


def has_values(frame: pd.DataFrame, *columns: str, min_rows: int = 1) -> bool:
    """True when at least ``min_rows`` rows have every one of ``columns`` (the report skips figures that would be empty)."""
    if any(c not in frame for c in columns):
        return False
    return int(frame[list(columns)].notna().all(axis=1).sum()) >= min_rows


def panel_has_values(table: pd.DataFrame, y: str) -> bool:
    """True when a :func:`bar_panels` table has at least one bar to draw."""
    return y in table and bool(table[y].notna().any())


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_axis_off()


def _boxes(ax, data: list[np.ndarray], labels: list[str]) -> None:
    """Tukey box plots (whiskers at 1.5 IQR), drawn with matplotlib directly."""
    parts = ax.boxplot(data, whis=IQR_K, patch_artist=True, widths=0.6,
                       flierprops={"markersize": 2, "alpha": 0.5}, medianprops={"color": "black"})
    ax.set_xticks(range(1, len(labels) + 1), labels)
    for box in parts["boxes"]:
        box.set_facecolor(sns.color_palette(PALETTE, 3)[0])


def missing_values(profile: pd.DataFrame) -> Figure:
    """Missing share per field (bars), from :func:`custscore.analytics.profiling.profile`."""
    rows = profile[profile["role"] != "event"].sort_values("missing_pct")
    fig, (ax,) = new_figure(9, 0.35 * len(rows) + 1.5)
    labels = [f"{f} (no purchase yet)" if f in ("recency_days", "avg_order_value") else f for f in rows["field"]]
    ax.barh(labels, rows["missing_pct"], color=sns.color_palette(PALETTE, 1)[0])
    for y, (pct, n) in enumerate(zip(rows["missing_pct"], rows["missing"], strict=True)):
        ax.text(pct, y, f" {pct:.1f}% ({n:,})", va="center", fontsize=8)
    ax.set_xlabel("missing (% of customers)")
    ax.set_title("Missing values per field")
    ax.set_xlim(0, max(1.0, float(rows["missing_pct"].max()) * 1.25))
    return fig


def distributions(customers: pd.DataFrame) -> Figure:
    """Age, income (log scale), satisfaction, orders, spend (log scale) and tenure histograms."""
    color = sns.color_palette(PALETTE, 3)[1]
    c = customers
    panels = [
        ("age", "age (years)", dict(binwidth=2)),
        ("income", "income (USD/year, log scale)", dict(log_scale=True, bins=40)),
        ("customer_satisfaction", "customer satisfaction (score 1-10)", dict(discrete=True)),
        ("orders", "orders per customer (count)", dict(bins=40)),
        ("total_spent", "total spent (USD, log scale; buyers only)", dict(log_scale=True, bins=40)),
        ("tenure_days", "tenure (days since signup)", dict(bins=40)),
    ]
    drawn = []
    for col, label, kw in panels:
        values = c[col].dropna() if col in c else pd.Series(dtype=float)
        values = values[values > 0] if kw.get("log_scale") else values
        if not values.empty:  # a field without values gets no panel (the missing-values figure shows it)
            drawn.append((values, label, kw))
    ncols = min(3, max(1, len(drawn)))
    nrows = max(1, -(-len(drawn) // ncols))
    fig, axes = new_figure(5 * ncols, 4.25 * nrows, nrows, ncols)
    if not drawn:
        _empty(axes[0], "no customer field has values")
    for ax in axes[len(drawn):]:
        ax.set_axis_off()
    for ax, (values, label, kw) in zip(axes, drawn, strict=False):
        sns.histplot(x=values.to_numpy(), ax=ax, color=color, **kw)
        ax.set_xlabel(label)
        ax.set_ylabel("customers")
        ax.set_title(f"{label.split(' (')[0]} (n={len(values):,})")
    fig.suptitle("Distributions of customer fields")
    return fig


def outliers(customers: pd.DataFrame, events: pd.DataFrame, profile: pd.DataFrame) -> Figure:
    """Box plots on the modelling scale (log1p where chosen) with the IQR fences drawn."""
    chosen = [f for f in ("age", "income", "total_spent", "support_tickets") if has_values(customers, f, min_rows=4)]
    series = {f: customers[f] for f in chosen}
    if len(events):
        series["event amount"] = events["amount"]
    if not series:
        fig, (ax,) = new_figure(6, 3)
        _empty(ax, "no field has enough values for box plots")
        return fig
    fig, axes = new_figure(3.2 * max(len(series), 2), 4.5, 1, len(series))
    transforms = dict(zip(profile["field"], profile["transform"], strict=True))
    units = dict(zip(profile["field"], profile["unit"], strict=True))
    for ax, (name, values) in zip(axes, series.items(), strict=True):
        values = values.dropna()
        if name in ("total_spent",):
            values = values[customers.loc[values.index, "orders"] > 0]
        logged = transforms.get(name) == "log1p"
        scaled = np.log1p(values) if logged else values
        if len(scaled) < 4:
            _empty(ax, f"too few {name} values")
            continue
        lo, hi = iqr_fences(scaled)
        _boxes(ax, [scaled.to_numpy()], [""])
        for fence in (lo, hi):
            ax.axhline(fence, color="firebrick", ls="--", lw=1)
        n_out = int(((scaled < lo) | (scaled > hi)).sum())
        ax.set_title(f"{name}: {n_out:,} outliers")
        unit = units.get(name, "")
        ax.set_ylabel(f"log1p({name} in {unit})" if logged else f"{name} ({unit})")
    fig.suptitle("Outliers: IQR rule (1.5 x IQR beyond the quartiles, dashed fences), modelling scale")
    return fig


def correlation_heatmap(corr: pd.DataFrame) -> Figure:
    """Annotated heatmap of a correlation matrix (from :func:`custscore.analytics.profiling.correlations`)."""
    fig, (ax,) = new_figure(10, 8.5)
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 deprecates
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(corr, ax=ax, vmin=-1, vmax=1, cmap="vlag", annot=True, fmt=".2f", annot_kws={"size": 8},
                    square=True, cbar_kws={"label": "Spearman rho", "shrink": 0.8})
    ax.grid(False)
    ax.set_xticks(ax.get_xticks(), ax.get_xticklabels(), rotation=40, ha="right")
    ax.set_title("Spearman correlation of numeric customer features (RFM from purchase_history)")
    return fig


def income_vs_satisfaction(customers: pd.DataFrame) -> Figure:
    """Income (log scale) per satisfaction score."""
    pair = customers[["income", "customer_satisfaction"]].dropna()
    pair = pair[pair["income"] > 0]
    fig, (ax,) = new_figure(9, 5)
    if pair.empty:
        _empty(ax, "no customers with both income and satisfaction")
        return fig
    groups = pair.groupby(pair["customer_satisfaction"].astype(int))["income"]
    _boxes(ax, [g.to_numpy() for _, g in groups], [str(k) for k, _ in groups])
    ax.set_yscale("log")
    ax.set_xlabel("customer satisfaction (score 1-10)")
    ax.set_ylabel("income (USD/year, log scale)")
    ax.set_title(f"Income by satisfaction score (n={len(pair):,})")
    return fig


def recency_vs_churn(table: pd.DataFrame) -> Figure:
    """Churn rate per recency bucket (table from :func:`custscore.analytics.profiling.churn_by_recency`)."""
    fig, (ax,) = new_figure(9, 5)
    if table.empty:
        _empty(ax, "no ground truth (_truth) on these customers")
        return fig
    bars = ax.bar(table["recency"].astype(str), 100 * table["churn_rate"], color=sns.color_palette("rocket_r", len(table)))
    for bar, n in zip(bars, table["customers"], strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"n={int(n):,}", ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("days since last purchase (recency)")
    ax.set_ylabel("churned (% of customers, ground truth)")
    ax.set_title("Churn rate by recency (simulated ground truth)")
    ax.set_ylim(0, 105)
    return fig


def tickets_vs_satisfaction(customers: pd.DataFrame, cap: int = 10) -> Figure:
    """Mean satisfaction (+/- 2 standard errors) per support-ticket count, capped at ``cap``+."""
    pair = customers[["support_tickets", "customer_satisfaction"]].dropna()
    fig, (ax,) = new_figure(9, 5)
    if pair.empty:
        _empty(ax, "no customers with both support tickets and satisfaction")
        return fig
    tickets = pair["support_tickets"].clip(upper=cap).astype(int)
    stats = pair["customer_satisfaction"].groupby(tickets).agg(["mean", "sem", "size"])
    labels = [f"{k}+" if k == cap else str(k) for k in stats.index]
    ax.errorbar(labels, stats["mean"], yerr=2 * stats["sem"].fillna(0), fmt="o-", capsize=3,
                color=sns.color_palette(PALETTE, 3)[2])
    ax.set_xlabel("support tickets (count)")
    ax.set_ylabel("mean satisfaction (score 1-10)")
    ax.set_title(f"Satisfaction by support tickets (n={len(pair):,}; bars: 2 standard errors)")
    return fig


def bar_panels(panels: list[tuple[pd.DataFrame, str, str, str, str]], title: str, ncols: int = 2) -> Figure:
    """One bar chart per ``(table, x column, y column, panel title, y label)``; null groups shown as "missing"."""
    panels = [p for p in panels if panel_has_values(p[0], p[2])]  # no empty panels
    ncols = max(1, min(ncols, len(panels)))
    nrows = max(1, -(-len(panels) // ncols))
    fig, axes = new_figure(7.0 * ncols, 4.2 * nrows, nrows, ncols)
    if not panels:
        _empty(axes[0], "no group has values")
    for ax, (table, x, y, sub, ylabel) in zip(axes, panels, strict=False):
        data = table[[x, y]].dropna(subset=[y])
        labels = data[x].astype(object).where(data[x].notna(), "missing").astype(str)
        ax.bar(labels, data[y], color=sns.color_palette(PALETTE, max(len(data), 1)))
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(ylabel)
        ax.set_title(sub)
        if len(data) > 5:
            ax.set_xticks(range(len(data)), labels, rotation=35, ha="right")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def time_series(table: pd.DataFrame, x: str, y: str, title: str, ylabel: str) -> Figure:
    """A line over time (for pipeline results such as monthly revenue)."""
    fig, (ax,) = new_figure(10, 4.5)
    data = table[[x, y]].dropna()
    ax.plot(data[x].astype(str), data[y], marker="o", color=sns.color_palette(PALETTE, 3)[2])
    ax.set_xticks(range(len(data)), data[x].astype(str), rotation=45, ha="right")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("month")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


SEGMENT_FEATURES = {"orders": "orders", "total_spent": "spend", "recency_days": "recency", "tenure_days": "tenure",
                    "customer_satisfaction": "satisfaction", "income": "income", "age": "age",
                    "support_tickets": "tickets", "score_churn_probability": "churn prob."}


def segment_profiles(customers: pd.DataFrame, segment: str = "score_segment_name") -> Figure:
    """Customers per segment and each segment's feature means as z-scores against all customers."""
    cols = [c for c in SEGMENT_FEATURES if c in customers]
    data = customers.dropna(subset=[segment])
    fig, (left, right) = new_figure(15, 5.5, 1, 2)
    counts = data[segment].astype(str).value_counts()
    left.barh(counts.index, counts.to_numpy(), color=sns.color_palette(PALETTE, len(counts)))
    left.set_xlabel("customers")
    left.set_title("Customers per segment")
    means = data.groupby(data[segment].astype(str))[cols].mean()
    z = (means - customers[cols].mean()) / customers[cols].std().replace(0, np.nan)
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 deprecates
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(z.rename(columns=SEGMENT_FEATURES), ax=right, cmap="vlag", center=0, annot=True, fmt=".1f",
                    cbar_kws={"label": "segment mean (z-score vs all customers)"})
    right.grid(False)
    right.set_xticks(right.get_xticks(), right.get_xticklabels(), rotation=40, ha="right")
    right.set_ylabel("segment")
    right.set_title("Segment profiles")
    return fig


def importance_bars(importance: pd.Series, title: str, xlabel: str = "mean |SHAP value|", top: int = 15) -> Figure:
    """Horizontal bars of the ``top`` largest values (e.g. global SHAP importance per feature)."""
    data = importance.dropna().sort_values(ascending=False).head(top).iloc[::-1]
    fig, (ax,) = new_figure(9, 0.35 * len(data) + 1.5)
    ax.barh(data.index.astype(str), data.to_numpy(), color=sns.color_palette(PALETTE, max(len(data), 1)))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def score_histogram(customers: pd.DataFrame) -> Figure:
    """Distribution of the scored churn probability."""
    fig, (ax,) = new_figure(9, 4.5)
    values = customers.get("score_churn_probability", pd.Series(dtype=float)).dropna()
    if values.empty:
        _empty(ax, "no scores yet")
        return fig
    sns.histplot(x=values.to_numpy(dtype=float), bins=40, binrange=(0, 1), ax=ax, color=sns.color_palette("rocket", 3)[1])
    ax.set_xlabel("predicted churn probability (0-1)")
    ax.set_ylabel("customers")
    ax.set_title(f"Scored churn probability (n={len(values):,})")
    return fig
