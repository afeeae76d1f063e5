"""Top-N selection with the buy-again rule, and the ranking metrics of the leaderboard.

Binary relevance: a recommended product is a hit when the customer bought it in the
held-out future. At cut-off ``k``: precision ``hits / k``; recall ``hits / |relevant|``;
NDCG ``DCG / ideal DCG`` with ``1 / log2(rank + 1)`` gains; average precision
``sum of precision at each hit / min(|relevant|, k)`` (MAP is its mean); hit rate: at
least one hit. Catalogue coverage: the share of products recommended to anybody; mean
popularity: the average share of training customers who bought what is recommended
(lower = further into the long tail).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

K = 10
METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")


def excluded_mask(H: sp.csr_matrix, repeatable: np.ndarray) -> sp.csr_matrix:
    """True where a row already bought a product that cannot be bought again."""
    H = sp.csr_matrix(H)
    keep = ~np.asarray(repeatable, dtype=bool)[H.indices] & (H.data != 0)
    indptr = np.concatenate([[0], np.cumsum(keep)])[H.indptr]
    return sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), H.indices[keep], indptr), shape=H.shape)


def top_n(scores: np.ndarray, n: int, excluded: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the ``n`` best scores per row, best first, never an excluded one; and their scores.

    Rows with fewer than ``n`` allowed products are padded with ``-1``.
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    if excluded is not None and excluded.nnz:
        r, c = excluded.nonzero()
        s[r, c] = -np.inf
    n = min(n, s.shape[1])
    part = np.argpartition(-s, n - 1, axis=1)[:, :n] if n < s.shape[1] else np.tile(np.arange(s.shape[1]), (len(s), 1))
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    cols, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
    cols = np.where(np.isfinite(vals), cols, -1)
    return cols, vals


def per_customer(recs: np.ndarray, relevant: Sequence[set[int]], k: int = K) -> dict[str, np.ndarray]:
    """Each metric at ``k`` for every row (one customer each; a row without relevant products scores 0)."""
    n = len(relevant)
    recs = np.asarray(recs)[:, :k]
    sizes = np.array([len(r) for r in relevant], dtype=float)
    rows = np.repeat(np.arange(n), [len(r) for r in relevant])
    cols = np.fromiter((c for r in relevant for c in r), dtype=np.int64, count=int(sizes.sum()))
    width = int(max(recs.max(initial=-1), cols.max(initial=-1))) + 1
    truth = sp.csr_matrix((np.ones(len(cols), dtype=bool), (rows, cols)), shape=(n, max(width, 1)))
    safe = np.maximum(recs, 0)
    hits = np.asarray(truth[np.arange(n)[:, None], safe].todense(), dtype=float) * (recs >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.clip(sizes.astype(int), 1, k) - 1]
    n_hit = hits.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
        out = {"precision": n_hit / k,
               "recall": np.where(sizes > 0, n_hit / np.maximum(sizes, 1), 0.0),
               "ndcg": np.where(sizes > 0, (hits * discounts[:hits.shape[1]]).sum(axis=1) / ideal, 0.0),
               "map": np.where(sizes > 0, (precision_at * hits).sum(axis=1) / np.clip(sizes, 1, k), 0.0),
               "hit_rate": (n_hit > 0).astype(float)}
    return out


def summary(recs: np.ndarray, relevant: Sequence[set[int]], popularity: np.ndarray, k: int = K) -> dict[str, float]:
    """Mean of each metric at ``k`` plus catalogue coverage and mean popularity of the recommended products."""
    rows = per_customer(recs, relevant, k)
    out = {f"{m}@{k}": float(v.mean()) for m, v in rows.items()}
    shown = recs[:, :k][recs[:, :k] >= 0]
    out["coverage"] = float(len(np.unique(shown)) / max(len(popularity), 1))
    out["mean_popularity"] = float(popularity[shown].mean()) if shown.size else 0.0
    return out
