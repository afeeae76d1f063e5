"""The one log1p step for heavy-tailed money and count features, shared by the model zoo and the segment model.

Values are clipped at 0 first: a negative amount is a refund, not a size, and log1p of it would be undefined
below -1 and misleading above.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from custscore.errors import ConfigError


class ClippedLog1p(TransformerMixin, BaseEstimator):
    """``log1p(max(x, 0))`` on the chosen columns; the other columns pass through unchanged.

    Parameters
    ----------
    columns : sequence of int or of bool
        Column positions to transform, or a boolean mask with one flag per column. Empty: transform none.

    Attributes
    ----------
    columns_ : ndarray of int
        Positions transformed.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    """

    def __init__(self, columns=()):
        self.columns = columns

    def fit(self, X, y=None):
        """Check ``X`` and resolve ``columns`` to positions; returns self."""
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        cols = np.asarray(self.columns if self.columns is not None else ())
        if cols.dtype == bool:
            if len(cols) not in (0, X.shape[1]):
                raise ConfigError(f"columns: a mask of {len(cols)} flags for {X.shape[1]} columns; "
                                  "give one flag per column or column positions")
            cols = np.flatnonzero(cols)
        cols = cols.astype(int)
        if len(cols) and (cols.min() < 0 or cols.max() >= X.shape[1]):
            raise ConfigError(f"columns: positions {cols.tolist()} outside 0..{X.shape[1] - 1}; "
                              "give positions of columns of X")
        self.columns_ = cols
        return self

    def transform(self, X):
        """A float copy of ``X`` with the chosen columns log1p-transformed after clipping at 0."""
        check_is_fitted(self, "columns_")
        X = np.array(validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False), copy=True)
        if len(self.columns_):
            X[:, self.columns_] = np.log1p(np.clip(X[:, self.columns_], 0.0, None))
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing stays missing; the imputer decides what it means
        return tags

    def get_feature_names_out(self, input_features=None):
        """The input names, one-to-one."""
        check_is_fitted(self, "columns_")
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        names = getattr(self, "feature_names_in_", None)
        return names.copy() if names is not None else np.asarray([f"x{i}" for i in range(self.n_features_in_)],
                                                                   dtype=object)
