"""The report's recommendations section: the recommender's stored leaderboard (popularity and oracle rows
included), coverage against accuracy, the rating models, and the popularity of what the scorer recommends
(``score.recommendations`` on customers) against what customers buy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from custscore.analytics import eda, model_figures
from custscore.analytics.model_sections import leaderboard, notes_list
from custscore.analytics.page import SCORE_HINT, Figures, Section, heading, paragraph, table

TRAIN_RECOMMEND = "run custscore train --task recommend"
# products ranked by purchases, most bought first: (label, upper edge as a share of the catalogue)
BANDS = (("top 1% of products", 0.01), ("1-5%", 0.05), ("5-20%", 0.20), ("20-50%", 0.50), ("50-100% (long tail)", 1.0))


def popularity_shares(events: pd.DataFrame, recommended: pd.Series) -> pd.DataFrame:
    """Per popularity band of products: share of purchases and share of recommendations that fall in it.

    Parameters
    ----------
    events : DataFrame
        Purchases with ``product_id``.
    recommended : Series
        Lists of recommended product ids per customer (``score.recommendations``).
    """
    counts = events["product_id"].dropna().astype(str).value_counts()
    recs = pd.Series([p for lst in recommended.dropna() for p in lst if p is not None], dtype=object).astype(str)
    catalogue = list(counts.index) + sorted(set(recs) - set(counts.index))  # never bought: the far tail
    rank = pd.Series(np.arange(1, len(catalogue) + 1) / max(len(catalogue), 1), index=catalogue)
    edges = [0.0] + [edge for _, edge in BANDS]
    labels = [label for label, _ in BANDS]

    def shares(ranks: pd.Series, weights: pd.Series | None = None) -> np.ndarray:
        band = pd.cut(ranks, edges, labels=labels, include_lowest=True)
        total = (weights if weights is not None else pd.Series(1.0, index=ranks.index)).groupby(band, observed=False).sum()
        return (total / max(total.sum(), 1e-12)).reindex(labels).fillna(0.0).to_numpy()

    purchases = shares(rank.reindex(counts.index), counts.astype(float))
    recommended_share = shares(pd.Series(rank.reindex(recs).to_numpy()))
    return pd.DataFrame({"band": labels, "purchases": purchases, "recommended": recommended_share})


def recommend_section(ds: eda.Dataset, records: list[dict], figs: Figures) -> Section:
    """The recommender's leaderboard, coverage against accuracy, ratings and the popularity of recommendations."""
    s = Section("recommend", "Recommendations")
    record = next((r for r in records if r.get("kind") == "ranking"), None)
    if record is None:
        return s.empty(f"No recommender registered yet: {TRAIN_RECOMMEND} to fill this section.")
    extra = record.get("extra") or {}
    s.add(paragraph(f"Production version {record['version']}, winner {extra.get('winner')}, over "
                    f"{extra.get('products', 0):,} products; the winner is picked on validation customers' NDCG@10, "
                    "test customers give the figures below (metrics at 10 recommendations)."))
    board, marked = leaderboard(record)
    if not board.empty:
        s.add(heading("Recommendation leaderboard (popularity is the baseline; the oracle knows the true tastes)")
              + table(board, marked=marked))
    raw = pd.DataFrame(extra.get("leaderboard") or [])
    if {"test_coverage", "test_ndcg@10"} <= set(raw.columns):
        title = "Coverage against accuracy of every recommender"
        s.add(heading(title) + figs.img("recommend_coverage_accuracy",
                                        model_figures.coverage_accuracy(raw, extra.get("winner")), title))
    if extra.get("ratings"):
        s.add(heading("Rating prediction (K-fold RMSE and MAE on explicit ratings)")
              + table(pd.DataFrame(extra["ratings"])))
    s.add(notes_list(extra))
    recommended = ds.customers.get("score_recommended", pd.Series(dtype=object))
    if recommended.notna().any() and "product_id" in ds.events and ds.events["product_id"].notna().any():
        shares = popularity_shares(ds.events, recommended)
        title = "Popularity of what is recommended, against what is bought"
        s.add(heading(title) + figs.img("recommend_popularity", model_figures.popularity_of_recommended(shares), title))
        s.add(paragraph(f"Over the stored score.recommendations of {int(recommended.notna().sum()):,} customers."))
        s.add(table(shares.assign(purchases=100 * shares["purchases"], recommended=100 * shares["recommended"])
                    .rename(columns={"purchases": "% of purchases", "recommended": "% of recommendations"})))
    else:
        s.add(paragraph(f"No score.recommendations on customers yet: {SCORE_HINT} to show the popularity of what "
                        "is recommended.", "note"))
    return s
