"""Figures of trained models, drawn from what the registry stores: ROC and precision-recall curves, the
confusion matrix at the chosen threshold, cumulative gains and lift, the reliability curve, the
recommenders' coverage against accuracy and the popularity of what they recommend.

Each takes plain dicts or DataFrames read from a manifest's ``extra`` and returns a
matplotlib Figure built like :mod:`custscore.analytics.figures` (own Agg canvas, nothing in pyplot).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from custscore.analytics.figures import PALETTE, new_figure


def roc_pr(curves: dict, task: str) -> Figure:
    """ROC (with the chance diagonal) and precision-recall (with the positive rate) side by side."""
    fig, (roc, pr) = new_figure(12, 5, 1, 2)
    colour = sns.color_palette(PALETTE, 3)[2]
    roc.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], color=colour, lw=2)
    roc.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
    roc.set_xlabel("false positive rate (share of negatives flagged)")
    roc.set_ylabel("true positive rate (share of positives caught)")
    roc.set_title(f"ROC curve for {task} (test split)")
    roc.legend(loc="lower right", fontsize=8)
    pr.plot(curves["pr"]["recall"], curves["pr"]["precision"], color=colour, lw=2)
    pr.axhline(curves.get("positive_rate", 0.0), color="0.6", ls="--", lw=1, label="positive rate (no skill)")
    pr.set_xlabel("recall (share of positives caught)")
    pr.set_ylabel("precision (share of flagged that are positive)")
    pr.set_title(f"Precision-recall curve for {task} (test split)")
    pr.set_ylim(0, 1.02)
    pr.legend(loc="upper right", fontsize=8)
    return fig


def confusion(conf: dict, task: str, labels: tuple[str, str] = ("no", "yes")) -> Figure:
    """The 2x2 confusion matrix at the chosen threshold, counts and shares of all test rows."""
    grid = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]], dtype=float)
    total = max(grid.sum(), 1.0)
    fig, (ax,) = new_figure(6, 5)
    ax.imshow(grid, cmap="Greens")
    for (i, j), n in np.ndenumerate(grid):
        ax.text(j, i, f"{int(n):,}\n({100 * n / total:.1f}%)", ha="center", va="center", fontsize=11,
                color="white" if n > grid.max() / 2 else "black")
    ax.set_xticks([0, 1], [f"predicted {labels[0]}", f"predicted {labels[1]}"])
    ax.set_yticks([0, 1], [f"actual {labels[0]}", f"actual {labels[1]}"])
    ax.grid(False)
    ax.set_title(f"Confusion matrix for {task} at threshold {conf['threshold']:.3f} (test split)")
    return fig


def gains_lift(gains: dict, task: str) -> Figure:
    """Cumulative gains (share of positives captured) and lift per tenth of customers ranked by score."""
    share = np.array([0.0, *gains["share"]]) * 100
    captured = np.array([0.0, *gains["captured"]]) * 100
    fig, (left, right) = new_figure(12, 4.8, 1, 2)
    colour = sns.color_palette(PALETTE, 3)[2]
    left.plot(share, captured, marker="o", color=colour, label="model")
    left.plot([0, 100], [0, 100], color="0.6", ls="--", label="random order")
    left.set_xlabel("customers contacted, highest score first (%)")
    left.set_ylabel("positives captured (%)")
    left.set_title(f"Cumulative gains for {task} (test split)")
    left.legend(loc="lower right", fontsize=8)
    right.bar([f"{s:.0f}" for s in share[1:]], gains["lift"], color=sns.color_palette(PALETTE, len(gains["lift"])))
    right.axhline(1.0, color="0.6", ls="--")
    right.set_xlabel("top share of customers by score (%)")
    right.set_ylabel("lift (captured share / contacted share)")
    right.set_title(f"Lift for {task} (test split)")
    return fig


def reliability(rows: list[dict], task: str) -> Figure:
    """Observed rate against mean predicted probability per bin, with the diagonal of perfect calibration."""
    frame = pd.DataFrame(rows)
    fig, (ax,) = new_figure(7, 5.5)
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    ax.plot(frame["mean_predicted"], frame["observed_rate"], marker="o", color=sns.color_palette(PALETTE, 3)[2],
            label="production model")
    for x, y, n in zip(frame["mean_predicted"], frame["observed_rate"], frame["count"], strict=True):
        ax.annotate(f"n={int(n):,}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(f"Reliability curve for {task} (test split)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def coverage_accuracy(board: pd.DataFrame, winner: str | None, x: str = "test_coverage",
                      y: str = "test_ndcg@10") -> Figure:
    """Each recommender as a point: catalogue coverage against NDCG@10 (the winner ringed)."""
    data = board.dropna(subset=[x, y])
    fig, (ax,) = new_figure(8, 5.5)
    ax.scatter(100 * data[x], data[y], s=60, color=sns.color_palette(PALETTE, 3)[2])
    for name, cx, cy in zip(data["model"], data[x], data[y], strict=True):
        ax.annotate(str(name), (100 * cx, cy), textcoords="offset points", xytext=(6, 4), fontsize=8)
        if name == winner:
            ax.scatter([100 * cx], [cy], s=260, facecolors="none", edgecolors="firebrick", lw=2, label="winner")
    ax.set_xlabel("catalogue coverage (% of products recommended to someone)")
    ax.set_ylabel("NDCG@10 on test customers")
    ax.set_title("Recommendations: coverage against accuracy")
    if winner in set(data["model"]):
        ax.legend(loc="lower right", fontsize=8)
    return fig


def popularity_of_recommended(shares: pd.DataFrame) -> Figure:
    """Share of recommendations and of purchases per popularity band of products (most bought first)."""
    fig, (ax,) = new_figure(10, 4.8)
    pos = np.arange(len(shares))
    colours = sns.color_palette(PALETTE, 3)
    ax.bar(pos - 0.2, 100 * shares["purchases"], width=0.4, color=colours[0], label="purchases")
    ax.bar(pos + 0.2, 100 * shares["recommended"], width=0.4, color=colours[2], label="recommended")
    ax.set_xticks(pos, shares["band"], rotation=20, ha="right")
    ax.set_xlabel("products by popularity (share of purchases, most bought first)")
    ax.set_ylabel("% of purchases / of recommendations")
    ax.set_title("Popularity of what is recommended, against what is bought")
    ax.legend(fontsize=8)
    return fig
