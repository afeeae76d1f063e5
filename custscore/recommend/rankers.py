"""Ranking models on the implicit customer x product matrix.

All follow one small protocol (sklearn style: the constructor stores arguments,
``fit`` learns and returns self, learned state ends in ``_``):

* ``fit(X, segments=None)`` with ``X`` the weighted training matrix (customers x products)
  and, for popularity, each row's segment label;
* ``score(H, segments=None)``: a dense ``(n, products)`` array of scores for customers
  whose *histories* are the rows of ``H`` (same weighting). Scoring from a history and
  not from a row id is what lets the scorer recommend to a customer who bought
  something a minute ago, or who was never in the training data (a fold-in);
* ``to_arrays()`` / ``from_arrays(params, arrays)``: numpy arrays plus JSON parameters,
  the registry's safe ``arrays`` layout (no pickle).

Models: :class:`Popularity` (optionally per segment), :class:`ItemKNN` (cosine, top-k
neighbours per product, shrunk), :class:`UserKNN` (cosine, top-k neighbours per
customer), :class:`ALS` and :class:`BPR` (the ``implicit`` library; customers folded in
by least squares on the item factors) and :class:`PureSVD` (scipy/sklearn truncated SVD).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

CHUNK = 512
DENSE_ROWS = 64  # UserKNN scores up to this many rows densely (faster below, slower at 256: 27 vs 42 ms)


def _csr(arrays: dict, prefix: str) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=tuple(int(v) for v in arrays[f"{prefix}_shape"]))


def _csr_arrays(m: sp.csr_matrix, prefix: str) -> dict:
    m = sp.csr_matrix(m)
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64)}


def top_k_dense(dense: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_k_rows` kept dense: the ``k`` largest positive entries of each row, zeros elsewhere."""
    if k >= dense.shape[1]:
        return dense
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dense, cols, axis=1)
    out = np.zeros_like(dense)
    np.put_along_axis(out, cols, np.where(vals > 0, vals, 0), axis=1)
    return out


def row_normalised_dense(H: sp.csr_matrix) -> np.ndarray:
    """``normalize(H, norm="l2")`` as a dense float32 array (norms in float64, as sklearn's own loop)."""
    dense = np.asarray(H.toarray() if sp.issparse(H) else H, dtype=np.float32).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", dense, dense))
    return (dense / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)


def top_k_rows(m: sp.csr_matrix | np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (a sparse result)."""
    dense = m.toarray() if sp.issparse(m) else np.asarray(m)
    n, p = dense.shape
    if k >= p:
        return sp.csr_matrix(dense)
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dense, cols, axis=1)
    keep = vals > 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, p))


class Popularity:
    """Most bought products (by distinct customers in the given matrix), globally or per segment.

    Parameters
    ----------
    by_segment : bool
        Rank per segment label (falls back to the global ranking for an unknown segment or
        one with fewer than ``min_customers``).
    min_customers : int
        Smallest segment that gets its own ranking.
    """

    name = "popularity"

    def __init__(self, by_segment: bool = False, min_customers: int = 30):
        self.by_segment = by_segment
        self.min_customers = min_customers

    def fit(self, X: sp.csr_matrix, segments: np.ndarray | None = None) -> Popularity:
        """Count buyers per product (and per segment)."""
        bought = (sp.csr_matrix(X) > 0).astype(np.float32)
        n = max(bought.shape[0], 1)
        self.global_ = np.asarray(bought.sum(axis=0)).ravel() / n
        self.segments_ = np.array([], dtype=str)
        self.by_segment_ = np.zeros((0, X.shape[1]), dtype=np.float32)
        if self.by_segment and segments is not None:
            segs = np.asarray(segments, dtype=str)
            labels, counts = np.unique(segs, return_counts=True)
            keep = labels[counts >= self.min_customers]
            rows = [np.asarray(bought[segs == s].sum(axis=0)).ravel() / max((segs == s).sum(), 1) for s in keep]
            self.segments_ = keep.astype(str)
            self.by_segment_ = np.vstack(rows).astype(np.float32) if rows else self.by_segment_
        return self

    def score(self, H: sp.csr_matrix, segments: np.ndarray | None = None) -> np.ndarray:
        """The (segment's) popularity for every row of ``H``."""
        n = H.shape[0]
        out = np.tile(self.global_.astype(np.float32), (n, 1))
        if segments is not None and len(self.segments_):
            where = {s: j for j, s in enumerate(self.segments_.tolist())}
            for r, s in enumerate(np.asarray(segments, dtype=str).tolist()):
                j = where.get(s)
                if j is not None:
                    out[r] = self.by_segment_[j]
        return out

    def to_arrays(self) -> tuple[dict, dict]:
        return ({"by_segment": self.by_segment, "min_customers": self.min_customers},
                {"global": self.global_, "segments": self.segments_.astype(str), "by_segment": self.by_segment_})

    @classmethod
    def from_arrays(cls, params: dict, arrays: dict) -> Popularity:
        m = cls(**params)
        m.global_, m.segments_, m.by_segment_ = arrays["global"], arrays["segments"], arrays["by_segment"]
        return m


class ItemKNN:
    """Item-item collaborative filtering: cosine similarity of product columns, top-k neighbours each.

    ``sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink)`` on the weighted matrix, the diagonal dropped;
    a customer's score for ``j`` is ``sum_i h_i sim(i, j)`` over the products in the history.

    Parameters
    ----------
    k : int
        Neighbours kept per product.
    shrink : float
        Damps similarities resting on few common buyers.
    """

    name = "item-knn"

    def __init__(self, k: int = 100, shrink: float = 5.0):
        self.k = k
        self.shrink = shrink

    def fit(self, X: sp.csr_matrix, segments: np.ndarray | None = None) -> ItemKNN:
        """Build the sparse top-k similarity matrix (products x products)."""
        Xc = sp.csc_matrix(X, dtype=np.float32)
        norms = np.sqrt(np.asarray(Xc.multiply(Xc).sum(axis=0)).ravel())
        XT = Xc.T.tocsr()
        parts = []
        for a in range(0, XT.shape[0], CHUNK):
            dots = (XT[a:a + CHUNK] @ Xc).toarray()
            dots /= norms[a:a + CHUNK, None] * norms[None, :] + self.shrink + 1e-12
            dots[np.arange(dots.shape[0]), np.arange(a, a + dots.shape[0])] = 0.0
            parts.append(top_k_rows(dots, self.k))
        self.similarity_ = sp.vstack(parts).tocsr().astype(np.float32) if parts else sp.csr_matrix(X.shape[1:] * 2)
        return self

    def score(self, H: sp.csr_matrix, segments: np.ndarray | None = None) -> np.ndarray:
        """``H @ similarity``."""
        return np.asarray((sp.csr_matrix(H) @ self.similarity_).todense(), dtype=np.float32)

    def to_arrays(self) -> tuple[dict, dict]:
        return {"k": self.k, "shrink": self.shrink}, _csr_arrays(self.similarity_, "sim")

    @classmethod
    def from_arrays(cls, params: dict, arrays: dict) -> ItemKNN:
        m = cls(**params)
        m.similarity_ = _csr(arrays, "sim")
        return m


class UserKNN:
    """User-user collaborative filtering: the ``k`` most cosine-similar training customers vote.

    Parameters
    ----------
    k : int
        Neighbours per customer.
    """

    name = "user-knn"

    def __init__(self, k: int = 50):
        self.k = k

    def fit(self, X: sp.csr_matrix, segments: np.ndarray | None = None) -> UserKNN:
        """Keep the row-normalised training matrix (the neighbours are found at scoring time)."""
        self.users_ = normalize(sp.csr_matrix(X, dtype=np.float32), norm="l2", axis=1).tocsr()
        self.users_T_ = self.users_.T.tocsr()
        return self

    def score(self, H: sp.csr_matrix, segments: np.ndarray | None = None) -> np.ndarray:
        """Similarity-weighted votes of each row's top-k neighbours (a customer is not their own neighbour)."""
        out = np.zeros(H.shape, dtype=np.float32)
        if H.shape[0] <= DENSE_ROWS:
            # a few customers (the API, a quiet feed): dense histories and neighbour weights against the sparse
            # training matrix, no sparse matrix built per call (8 customers: 1.3 -> 0.7 ms on the bench's home)
            sims = np.ascontiguousarray((self.users_ @ row_normalised_dense(H).T).T)
            sims[sims > 1.0 - 1e-6] = 0.0  # the same history: itself
            out[:] = (self.users_T_ @ top_k_dense(sims, self.k).T).T
            return out
        Hn = normalize(sp.csr_matrix(H, dtype=np.float32), norm="l2", axis=1)
        for a in range(0, H.shape[0], CHUNK):  # sparse neighbours: fewer operations once rows are many
            sims = (Hn[a:a + CHUNK] @ self.users_T_).toarray()
            sims[sims > 1.0 - 1e-6] = 0.0
            out[a:a + CHUNK] = (top_k_rows(sims, self.k) @ self.users_).toarray()
        return out

    def to_arrays(self) -> tuple[dict, dict]:
        return {"k": self.k}, _csr_arrays(self.users_, "users")

    @classmethod
    def from_arrays(cls, params: dict, arrays: dict) -> UserKNN:
        m = cls(**params)
        m.users_ = _csr(arrays, "users")
        m.users_T_ = m.users_.T.tocsr()
        return m


class _Factors:
    """Shared fold-in: a customer's factors are the ridge solution on the item factors."""

    item_factors_: np.ndarray
    fold_reg = 0.1

    def _fold(self, H: sp.csr_matrix) -> np.ndarray:
        V = self.item_factors_
        gram = V.T @ V + self.fold_reg * np.eye(V.shape[1], dtype=V.dtype)
        return np.linalg.solve(gram, (sp.csr_matrix(H) @ V).T).T

    def score(self, H: sp.csr_matrix, segments: np.ndarray | None = None) -> np.ndarray:
        """Folded-in customer factors times the item factors."""
        return (self._fold(H) @ self.item_factors_.T).astype(np.float32)

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("factors", "regularization", "iterations", "seed")}

    def to_arrays(self) -> tuple[dict, dict]:
        return self._params(), {"item_factors": self.item_factors_}

    @classmethod
    def from_arrays(cls, params: dict, arrays: dict):
        m = cls(**params)
        m.item_factors_ = arrays["item_factors"]
        return m


class ALS(_Factors):
    """Implicit ALS (Hu, Koren and Volinsky) from the ``implicit`` library; confidence ``1 + alpha * x``."""

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, iterations: int = 15, alpha: float = 20.0,
                 seed: int = 0):
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.alpha = alpha
        self.seed = seed

    def fit(self, X: sp.csr_matrix, segments: np.ndarray | None = None) -> ALS:
        """Alternating least squares on the weighted matrix (one thread: the machine is shared)."""
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1), warnings.catch_warnings():
            # implicit checks the OpenBLAS env var even though threadpool_limits already caps the pool
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                            alpha=self.alpha, iterations=self.iterations, random_state=self.seed,
                                            num_threads=1)
            model.fit(sp.csr_matrix(X, dtype=np.float32), show_progress=False)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def _fold(self, H: sp.csr_matrix) -> np.ndarray:
        # the exact ALS user step: (V'V + V'(C - I)V + reg I) u = V' C p, with C = 1 + alpha h, p = h > 0
        V = self.item_factors_.astype(np.float64)
        H = sp.csr_matrix(H)
        base = V.T @ V + self.regularization * np.eye(V.shape[1])
        out = np.zeros((H.shape[0], V.shape[1]))
        for r in range(H.shape[0]):
            a, b = H.indptr[r], H.indptr[r + 1]
            if a == b:
                continue
            cols, c = H.indices[a:b], self.alpha * H.data[a:b].astype(np.float64)
            Vi = V[cols]
            out[r] = np.linalg.solve(base + (Vi.T * c) @ Vi, Vi.T @ (1.0 + c))
        return out

    def _params(self) -> dict:
        return {**super()._params(), "alpha": self.alpha}


class BPR(_Factors):
    """Bayesian personalised ranking (pairwise SGD) from the ``implicit`` library."""

    name = "bpr"

    def __init__(self, factors: int = 64, regularization: float = 0.01, iterations: int = 40,
                 learning_rate: float = 0.05, seed: int = 0):
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, X: sp.csr_matrix, segments: np.ndarray | None = None) -> BPR:
        """SGD over (customer, bought, not bought) triples."""
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(factors=self.factors, regularization=self.regularization,
                                            learning_rate=self.learning_rate, iterations=self.iterations,
                                            random_state=self.seed, num_threads=1)
        with threadpool_limits(1):
            model.fit(sp.csr_matrix(X, dtype=np.float32), show_progress=False)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def _params(self) -> dict:
        return {**super()._params(), "learning_rate": self.learning_rate}


class PureSVD(_Factors):
    """Truncated SVD of the weighted matrix (scipy/sklearn; Cremonesi et al.'s PureSVD): ``scores = H V V'``."""

    name = "pure-svd"

    def __init__(self, factors: int = 64, regularization: float = 0.0, iterations: int = 5, seed: int = 0):
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed

    def fit(self, X: sp.csr_matrix, segments: np.ndarray | None = None) -> PureSVD:
        """Randomised truncated SVD; the item factors are the right singular vectors."""
        k = max(1, min(self.factors, min(X.shape) - 1))
        svd = TruncatedSVD(n_components=k, n_iter=self.iterations, random_state=self.seed)
        with threadpool_limits(1):
            svd.fit(sp.csr_matrix(X, dtype=np.float32))
        self.item_factors_ = svd.components_.T.astype(np.float32)
        return self

    def _fold(self, H: sp.csr_matrix) -> np.ndarray:
        return np.asarray(sp.csr_matrix(H) @ self.item_factors_)


RANKERS = {c.name: c for c in (Popularity, ItemKNN, UserKNN, ALS, BPR, PureSVD)}
