"""The production recommender: the winning ranker, reasons, the buy-again rule and cold starts.

A :class:`Recommender` scores customers from their *current* purchase histories (the
events the scorer read for the batch), so a purchase made a second ago already
changes the list. Each recommendation carries a reason:

* ``"because you bought X"``: X is the product in the history whose item-item similarity
  contributes most to the recommended one;
* ``"you buy it again and again"``: a repeatable product (groceries) already bought;
* ``"popular with customers like you"``: a customer without purchases (or whose history
  says nothing about a product) gets the popularity of their segment (age band and channel).

Products a customer already bought in a non-repeatable category are never recommended.
Everything is stored as numpy arrays and JSON (the registry's ``arrays`` layout).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from custscore.errors import InputError
from custscore.recommend import metrics
from custscore.recommend.interactions import HALF_LIFE_DAYS, events_frame, weighted_matrix, weights_matrix
from custscore.recommend.rankers import RANKERS, ItemKNN, Popularity

log = logging.getLogger(__name__)

COLD_REASON = "popular with customers like you"
AGAIN_REASON = "you buy it again and again"  # a repeatable product already in the history
DEFAULT_N = 10


def because(product_id: str) -> str:
    """The reason text of a neighbour-based recommendation."""
    return f"because you bought {product_id}"


class Recommender:
    """Serve top-N recommendations with reasons (see the module docstring).

    Parameters
    ----------
    model : ranker
        The fitted winner (any :mod:`custscore.recommend.rankers` model).
    neighbours : ItemKNN
        Fitted item-item similarities: reasons and ``custscore similar``.
    popularity : Popularity
        Fitted per-segment popularity: cold starts.
    items, item_category : numpy.ndarray
        Product id and category per column.
    repeatable_categories : sequence of str
        Categories that may be bought again.
    half_life_days : float
        Recency weighting of histories (as in training).
    """

    def __init__(self, model, neighbours: ItemKNN, popularity: Popularity, items: np.ndarray,
                 item_category: np.ndarray, repeatable_categories: Sequence[str],
                 half_life_days: float = HALF_LIFE_DAYS):
        self.model = model
        self.neighbours = neighbours
        self.popularity = popularity
        self.items = np.asarray(items, dtype=str)
        self.item_category = np.asarray(item_category, dtype=str)
        self.repeatable_categories = [str(c) for c in repeatable_categories]
        self.half_life_days = float(half_life_days)
        self._column = {p: j for j, p in enumerate(self.items.tolist())}
        self.repeatable = np.isin(self.item_category, self.repeatable_categories)

    # ------------------------------------------------------------------ scoring
    def histories(self, ids: Sequence[str], events: pd.DataFrame, now: dt.datetime) -> sp.csr_matrix:
        """The weighted history matrix (``ids`` x products) of ``events`` up to ``now``; unknown products dropped."""
        ev = events[events["customer_id"].isin(list(ids)) & (events["ts"] <= pd.Timestamp(now))]
        ev = ev.assign(u=pd.Index(list(ids)).get_indexer(ev["customer_id"]),
                       i=ev["product_id"].map(self._column).fillna(-1).astype(int))
        ev = ev[(ev["u"] >= 0) & (ev["i"] >= 0)]
        return weighted_matrix(ev, (len(ids), len(self.items)), pd.Timestamp(now), self.half_life_days)

    def histories_of_documents(self, ids: Sequence[str], events: Sequence[Mapping], now: dt.datetime
                               ) -> sp.csr_matrix | None:
        """:meth:`histories` from plain event documents without pandas (the API's few customers), or None.

        Same matrix as the frame path: events ordered by customer and time (stable), ages in days as pandas'
        ``total_seconds`` computes them. None when a document is not plain (a ``ts`` that is not a naive datetime);
        the caller then builds the frame.
        """
        row = {cid: r for r, cid in enumerate(ids)}
        now = pd.Timestamp(now).to_pydatetime()
        if now.tzinfo is not None:
            return None
        kept = []
        for e in events:
            cid, pid, ts = e.get("customer_id"), e.get("product_id"), e.get("ts")
            if cid is None or pid is None or (isinstance(pid, float) and pid != pid):
                continue
            if type(ts) is not dt.datetime or ts.tzinfo is not None:
                return None
            r, j = row.get(str(cid)), self._column.get(str(pid))
            if r is None or j is None or ts > now:
                continue
            kept.append((str(cid), ts, r, j))
        kept.sort(key=lambda k: (k[0], k[1]))  # stable, as the frame's sort by customer and time
        us = np.array([(now - k[1]) // dt.timedelta(microseconds=1) for k in kept], dtype=np.int64)
        seconds, residual = np.divmod(us, 1_000_000)
        age = (seconds + residual / 1_000_000) / 86_400.0
        u = np.array([k[2] for k in kept], dtype=np.int64)
        i = np.array([k[3] for k in kept], dtype=np.int64)
        return weights_matrix(age, u, i, (len(ids), len(self.items)), self.half_life_days)

    def recommend(self, ids: Sequence[str], events: pd.DataFrame | Sequence[Mapping], segments: Mapping[str, str],
                  now: dt.datetime, n: int = DEFAULT_N) -> dict[str, list[dict]]:
        """Top-``n`` products with score and reason for each customer id.

        Parameters
        ----------
        ids : sequence of str
            Customers to recommend to.
        events : pandas.DataFrame or sequence of dict
            Their purchases (:func:`~custscore.recommend.interactions.events_frame`), any superset; or plain event
            documents (:meth:`histories_of_documents`, for a few customers).
        segments : mapping
            customer id -> segment label (:func:`~custscore.recommend.interactions.segment_of`).
        now : datetime
            As-of time: later events are ignored.
        n : int
            List length.

        Returns
        -------
        dict
            customer id -> ``[{"product_id", "score", "reason"}, ...]`` best first.
        """
        if n < 1:
            raise InputError(f"n={n}: the number of recommendations must be at least 1; pass e.g. --n 10")
        ids = [str(i) for i in ids]
        if not ids:
            return {}
        H = None if isinstance(events, pd.DataFrame) else self.histories_of_documents(ids, events, now)
        if H is None:
            H = self.histories(ids, events if isinstance(events, pd.DataFrame) else events_frame(events), now)
        segs = np.array([segments.get(i, "unknown/unknown") for i in ids], dtype=str)
        warm = np.diff(H.indptr) > 0
        scores = np.zeros(H.shape, dtype=np.float32)
        if warm.any():
            scores[warm] = self.model.score(H[warm], segs[warm])
        popular = self.popularity.score(H, segs)
        # cold rows, and ties at zero in warm rows, fall back on the segment's popularity (scaled to rank below)
        scale = np.abs(scores).max(axis=1, keepdims=True)
        scores = np.where(warm[:, None], scores + 1e-3 * scale * popular / (popular.max() + 1e-12), popular)
        cols, vals = metrics.top_n(scores, n, metrics.excluded_mask(H, self.repeatable))
        contrib_src = self._reasons(H, cols)
        bought = [set(H.indices[H.indptr[r]:H.indptr[r + 1]].tolist()) for r in range(H.shape[0])]
        out: dict[str, list[dict]] = {}
        for r, cid in enumerate(ids):
            recs = []
            for c, v, src in zip(cols[r].tolist(), vals[r].tolist(), contrib_src[r], strict=True):
                if c < 0:
                    continue
                if c in bought[r]:
                    reason = AGAIN_REASON
                else:
                    reason = because(self.items[src]) if (warm[r] and src >= 0) else COLD_REASON
                recs.append({"product_id": str(self.items[c]), "score": round(float(v), 5), "reason": reason})
            out[cid] = recs
        return out

    def _reasons(self, H: sp.csr_matrix, cols: np.ndarray) -> list[list[int]]:
        """Per recommended column the history product contributing most through item-item similarity (-1: none)."""
        S = self.neighbours.similarity_
        n, k = cols.shape
        lengths = np.diff(H.indptr)
        # every (row, history product, recommended slot) triple, looked up in one vectorised sparse read
        row_of = np.repeat(np.arange(n), lengths * k)
        hist = np.repeat(H.indices, np.repeat(k, len(H.indices)))
        weight = np.repeat(H.data, np.repeat(k, len(H.indices)))
        slot = np.concatenate([np.tile(np.arange(k), m) for m in lengths.tolist()]) if len(row_of) else \
            np.zeros(0, dtype=np.int64)
        target = cols[row_of, slot]
        contrib = np.asarray(S[hist, np.maximum(target, 0)]).ravel() * weight if len(row_of) else np.zeros(0)
        contrib[target < 0] = 0.0
        best = np.full((n, k), -1, dtype=np.int64)
        value = np.zeros((n, k))
        order = np.lexsort((contrib, slot, row_of))  # per (row, slot), the largest contribution last
        r_s, s_s = row_of[order], slot[order]
        last = np.r_[(r_s[1:] != r_s[:-1]) | (s_s[1:] != s_s[:-1]), True] if len(order) else np.zeros(0, bool)
        pick = order[last]
        best[row_of[pick], slot[pick]] = hist[pick]
        value[row_of[pick], slot[pick]] = contrib[pick]
        return np.where(value > 0, best, -1).tolist()

    def similar(self, product_id: str, n: int = DEFAULT_N) -> list[dict]:
        """The ``n`` most similar products (item-item cosine) to ``product_id``.

        Raises
        ------
        InputError
            An unknown product id.
        """
        j = self._column.get(str(product_id))
        if j is None:
            sample = ", ".join(self.items[:3].tolist())
            raise InputError(f"product_id={product_id!r} is not in the recommender's catalogue of {len(self.items):,} "
                             f"products; use an id from the events, e.g. {sample}")
        row = self.neighbours.similarity_[j]
        order = np.argsort(-row.data, kind="stable")[:n]
        return [{"product_id": str(self.items[row.indices[k]]), "category": str(self.item_category[row.indices[k]]),
                 "similarity": round(float(row.data[k]), 4)} for k in order]

    # ------------------------------------------------------------------ arrays layout
    def to_arrays(self) -> tuple[dict, dict]:
        """JSON parameters and numpy arrays that rebuild this recommender (no pickle)."""
        params = {"model": self.model.name, "repeatable_categories": self.repeatable_categories,
                  "half_life_days": self.half_life_days}
        arrays = {"items": self.items, "item_category": self.item_category}
        for prefix, part in (("model", self.model), ("neighbours", self.neighbours), ("popularity", self.popularity)):
            p, a = part.to_arrays()
            params[f"{prefix}_params"] = p
            arrays.update({f"{prefix}.{k}": v for k, v in a.items()})
        return params, arrays

    @classmethod
    def from_arrays(cls, params: dict, arrays: Mapping[str, np.ndarray]) -> Recommender:
        """Rebuild from :meth:`to_arrays` output."""
        def part(prefix: str) -> dict:
            return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}

        if params["model"] not in RANKERS:
            raise InputError(f"model={params['model']!r} is not a known ranker; retrain with "
                             "`custscore train --task recommend`")
        model = RANKERS[params["model"]].from_arrays(params["model_params"], part("model"))
        neighbours = ItemKNN.from_arrays(params["neighbours_params"], part("neighbours"))
        popularity = Popularity.from_arrays(params["popularity_params"], part("popularity"))
        return cls(model, neighbours, popularity, arrays["items"], arrays["item_category"],
                   params["repeatable_categories"], params["half_life_days"])
