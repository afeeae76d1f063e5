"""Customer segmentation: K-Means on scaled behaviour, readable segment names, and a rule tree for new customers.

:class:`SegmentModel` standardises behavioural features (median imputation,
log1p for heavy-tailed money/count features, z-scores; one-hot categoricals),
runs K-Means for every k in a range and records inertia (the elbow), silhouette
and Davies-Bouldin. k is the one with the best silhouette; the elbow is kept in
``k_table_`` and :func:`custscore.models.segment_report.elbow_silhouette_figure` for reference. A shallow
decision tree then learns the segments from the raw (imputed, unscaled)
features, so new customers get a segment through rules that read in real units
(:func:`custscore.models.segment_report.rules_text`), and ``tree_`` is a "prep" + "model" Pipeline like every
other model.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import davies_bouldin_score, silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from custscore.errors import InputError
from custscore.models import feature_catalogue
from custscore.models.log_transform import ClippedLog1p
from custscore.models.segment_names import name_segments, segment_percentiles

log = logging.getLogger(__name__)

# Chosen on 20k simulated customers (seed 7): the category mix (``share_*`` columns, one
# per category), basket size, order value, purchase rate and tenure tell the personas
# apart; more RFM columns raise K-Means ARI but make segments harder for a depth-5 tree. With features=None the listed columns present in X are used, plus every
# ``share_*`` column; without shares, ``top_category`` stands in (clearly weaker).
BEHAVIOUR_FEATURES: list[str] = [
    "orders_per_month", "spend_mean", "items_per_order", "tenure_days", "recency_days",
]
FALLBACK_CATEGORY = "top_category"
# One-hot columns have variance p(1-p) <= 0.25; without a boost they barely move
# centroids next to unit-variance numeric columns.
CAT_WEIGHT = 2.0
SILHOUETTE_SAMPLE = 5000
N_INIT = 5
MIN_LEAF = 20


def _weight(X, w=1.0):
    """Multiply by a constant weight."""
    return np.asarray(X, dtype=float) * w


def _is_skewed(col: pd.Series) -> bool:
    """Non-negative with a heavy right tail (for feature names features.py does not know)."""
    x = col.dropna()
    return len(x) > 2 and x.min() >= 0 and x.skew() > 2.0


def _onehot() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


class SegmentModel(BaseEstimator):
    """K-Means customer segments with readable names and a decision tree that assigns new customers.

    Parameters
    ----------
    features : list of str or None
        Columns to cluster on; ``None`` uses the :data:`BEHAVIOUR_FEATURES` present in ``X`` plus its
        ``share_*`` columns (or ``top_category`` when there are none).
        Numeric columns are scaled, object columns one-hot encoded.
    k_range : tuple of int
        Inclusive range of k to try (both >= 2).
    k : int or None
        Force this k (the range is still scored for the table and figure).
    seed : int
        Seed of K-Means, the silhouette sample and the tree.
    tree_max_depth : int
        Depth of the assignment tree (deeper = more faithful, less readable rules).

    Attributes
    ----------
    features_, numeric_, categorical_, log_features_ : list of str
        Columns used, split by kind; numeric columns log1p-transformed before scaling.
    k_ : int
        Number of segments chosen (best silhouette in ``k_range`` unless ``k`` is given).
    k_rule_ : str
        How ``k_`` was chosen: "best silhouette" or "forced by k".
    kmeans_ : Pipeline
        "prep" (impute, log1p, scale, one-hot) + "model" (KMeans, in its own cluster numbering).
    segment_of_cluster_ : ndarray of int
        Segment id of each KMeans cluster; segment ids are ordered by size, 0 = largest.
    labels_ : ndarray
        K-Means segment of each training row.
    tree_ : Pipeline
        "prep" (impute only, so rules read in real units) + "model" (DecisionTreeClassifier).
    k_table_ : DataFrame
        Columns k, inertia, silhouette, davies_bouldin; one row per k tried.
    profiles_ : DataFrame
        Per segment: name, size, share, mean of each numeric feature, most common value of each categorical one.
    rfm_percentiles_ : DataFrame
        Per segment, the population percentile of its median customer on recency (1 = most recent), frequency,
        monetary and tenure, and its share who never bought (see :mod:`custscore.models.segment_names`); also
        in ``profiles_`` as ``*_pct`` columns (and ``never_bought_share``).
    names_ : dict of int to str
        Segment id -> unique RFM-grid name such as "champions" or "at risk (grocery)".
    tree_agreement_ : float
        Accuracy of the tree against the K-Means labels on the training data.
    """

    def __init__(self, features=None, k_range=(3, 8), k=None, seed=0, tree_max_depth=5):
        self.features = features
        self.k_range = k_range
        self.k = k
        self.seed = seed
        self.tree_max_depth = tree_max_depth

    # ------------------------------------------------------------------ fitting

    def fit(self, X: pd.DataFrame, y=None) -> SegmentModel:
        """Cluster ``X`` for each k, choose k, name the segments and fit the assignment tree.

        Parameters
        ----------
        X : DataFrame
            Feature frame indexed by customer id (see :mod:`custscore.models.features`).
        y : ignored

        Returns
        -------
        SegmentModel
            ``self``, fitted.

        Raises
        ------
        InputError
            If ``X`` is not a non-empty DataFrame, lacks a requested column, or k settings are unusable.
        """
        cols = self._resolve_columns(X)
        lo, hi = self._check_k(len(X))
        data = X[cols]
        self.features_ = cols
        self.numeric_ = [c for c in cols if pd.api.types.is_numeric_dtype(data[c])]
        self.categorical_ = [c for c in cols if c not in self.numeric_]
        known_log = set(feature_catalogue.log_features())
        known = set(feature_catalogue.FEATURE_NAMES)
        self.log_features_ = [c for c in self.numeric_
                              if c in known_log or (c not in known and _is_skewed(data[c].astype(float)))]
        prep = self._kmeans_prep()
        Z = prep.fit_transform(data)
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(len(Z), size=min(SILHOUETTE_SAMPLE, len(Z)), replace=False))
        ks = sorted(set(range(lo, hi + 1)) | ({int(self.k)} if self.k is not None else set()))
        rows, fitted = [], {}
        for k in ks:
            km = KMeans(n_clusters=k, n_init=N_INIT, random_state=self.seed).fit(Z)
            sil = silhouette_score(Z[sample], km.labels_[sample]) if len(set(km.labels_[sample])) > 1 else np.nan
            rows.append({"k": k, "inertia": float(km.inertia_), "silhouette": float(sil),
                         "davies_bouldin": float(davies_bouldin_score(Z, km.labels_))})
            fitted[k] = km
            log.debug("k=%d inertia=%.0f silhouette=%.3f", k, km.inertia_, sil)
        self.k_table_ = pd.DataFrame(rows, columns=["k", "inertia", "silhouette", "davies_bouldin"])
        if self.k is not None:
            self.k_, self.k_rule_ = int(self.k), "forced by k"
        else:
            self.k_ = int(self.k_table_.loc[self.k_table_["silhouette"].idxmax(), "k"])
            self.k_rule_ = "best silhouette"
        km = fitted[self.k_]
        # Renumber by size so segment ids are stable and meaningful (0 = largest); KMeans keeps its own numbering.
        order = np.argsort(-np.bincount(km.labels_, minlength=self.k_), kind="stable")
        self.segment_of_cluster_ = np.empty_like(order)
        self.segment_of_cluster_[order] = np.arange(self.k_)
        self.kmeans_ = Pipeline([("prep", prep), ("model", km)])
        self.labels_ = self.segment_of_cluster_[km.labels_]
        self.tree_ = Pipeline([("prep", self._tree_prep()),
                               ("model", DecisionTreeClassifier(max_depth=self.tree_max_depth,
                                                                min_samples_leaf=MIN_LEAF, random_state=self.seed))])
        self.tree_.fit(data, self.labels_)
        self.tree_agreement_ = float(np.mean(self.tree_.predict(data) == self.labels_))
        self.names_ = self._name_segments(X, self.labels_)
        self.profiles_ = self._profiles(data, self.labels_)
        log.info("segments: k=%d silhouette=%.3f tree agreement=%.3f", self.k_,
                 self.k_table_.set_index("k").loc[self.k_, "silhouette"], self.tree_agreement_)
        return self

    def _resolve_columns(self, X) -> list[str]:
        if not isinstance(X, pd.DataFrame) or X.empty:
            raise InputError(f"X must be a non-empty pandas DataFrame of features, got {type(X).__name__}; "
                             "build it with custscore.models.features.customer_features")
        if self.features is None:
            cols = [c for c in BEHAVIOUR_FEATURES if c in X.columns]
            shares = [str(c) for c in X.columns if str(c).startswith(feature_catalogue.SHARE_PREFIX)]
            if shares:
                cols += shares
            elif FALLBACK_CATEGORY in X.columns:
                log.warning("no %s* category-share columns in X; clustering on %s instead (weaker segments)",
                            feature_catalogue.SHARE_PREFIX, FALLBACK_CATEGORY)
                cols.append(FALLBACK_CATEGORY)
            if not cols:
                raise InputError(f"X has none of the segment features {BEHAVIOUR_FEATURES}; "
                                 "pass features=[...] naming columns of X")
            return cols
        missing = [c for c in self.features if c not in X.columns]
        if missing or not list(self.features):
            raise InputError(f"features {missing or '[]'} not in X (columns: {list(X.columns)[:10]}...); "
                             "pass names of columns of X")
        return list(self.features)

    def _check_k(self, n: int) -> tuple[int, int]:
        try:
            lo, hi = (int(v) for v in self.k_range)
        except (TypeError, ValueError) as exc:
            raise InputError(f"k_range must be a pair of integers (lo, hi), got {self.k_range!r}; "
                             "pass e.g. (3, 8)") from exc
        if not 2 <= lo <= hi:
            raise InputError(f"k_range must satisfy 2 <= lo <= hi, got {self.k_range!r}; pass e.g. (3, 8)")
        top = max(hi, int(self.k) if self.k is not None else hi)
        if self.k is not None and int(self.k) < 2:
            raise InputError(f"k must be >= 2 or None, got {self.k!r}; pass e.g. 5 or None to choose")
        if n <= top:
            raise InputError(f"X has {n} rows, too few for k up to {top}; pass more customers or a smaller k_range")
        return lo, hi

    def _kmeans_prep(self) -> ColumnTransformer:
        mask = tuple(c in self.log_features_ for c in self.numeric_)
        parts = []
        if self.numeric_:
            parts.append(("num", Pipeline([
                ("impute", SimpleImputer(strategy="median")),
                ("log", ClippedLog1p(columns=mask)),
                ("scale", StandardScaler())]), self.numeric_))
        if self.categorical_:
            parts.append(("cat", Pipeline([
                ("impute", SimpleImputer(strategy="constant", fill_value="missing")), ("onehot", _onehot()),
                ("weight", FunctionTransformer(_weight, kw_args={"w": CAT_WEIGHT},
                                               feature_names_out="one-to-one"))]), self.categorical_))
        return ColumnTransformer(parts, verbose_feature_names_out=False)

    def _tree_prep(self) -> ColumnTransformer:
        parts = []
        if self.numeric_:
            parts.append(("num", SimpleImputer(strategy="median"), self.numeric_))
        if self.categorical_:
            parts.append(("cat", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                                           ("onehot", _onehot())]), self.categorical_))
        return ColumnTransformer(parts, verbose_feature_names_out=False)

    # ------------------------------------------------------------------ describing

    def _name_segments(self, X: pd.DataFrame, labels: np.ndarray) -> dict[int, str]:
        """Name each segment from the RFM grid relative to the population (see :mod:`custscore.models.segment_names`)."""
        hint = X[FALLBACK_CATEGORY] if FALLBACK_CATEGORY in X.columns else None
        self.rfm_percentiles_ = segment_percentiles(X, labels)
        return name_segments(X, labels, self.k_, hint=hint)

    def _profiles(self, data: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
        groups = data.groupby(labels)
        prof = pd.DataFrame({"name": [self.names_[s] for s in range(self.k_)]}, index=range(self.k_))
        prof["size"] = groups.size().reindex(prof.index).fillna(0).astype(int)
        prof["share"] = prof["size"] / len(data)
        if self.numeric_:
            prof = prof.join(groups[self.numeric_].mean())
        for c in self.categorical_:
            prof[c] = groups[c].agg(lambda s: s.mode().iloc[0] if s.notna().any() else None)
        # Where the segment's median customer sits in the population (the RFM grid its name comes from).
        pct = self.rfm_percentiles_.rename(columns=lambda c: "never_bought_share" if c == "never_bought" else f"{c}_pct")
        prof = prof.join(pct.reindex(prof.index))
        prof.index.name = "segment"
        return prof

    # ------------------------------------------------------------------ predicting

    def _select(self, X) -> pd.DataFrame:
        check_is_fitted(self, "tree_")
        if not isinstance(X, pd.DataFrame):
            raise InputError(f"X must be a pandas DataFrame of features, got {type(X).__name__}; "
                             "build it with custscore.models.features.customer_features")
        missing = [c for c in self.features_ if c not in X.columns]
        if missing:
            raise InputError(f"X lacks segment features {missing}; pass a frame from customer_features")
        return X[self.features_]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Segment id of each row through the decision tree (the path for new customers; NaNs are imputed)."""
        X = self._select(X)  # first: it raises NotFittedError before fit
        return self.tree_.predict(X)

    def predict_kmeans(self, X: pd.DataFrame) -> np.ndarray:
        """Segment id of each row by nearest K-Means centroid."""
        X = self._select(X)
        return self.segment_of_cluster_[self.kmeans_.predict(X)]
