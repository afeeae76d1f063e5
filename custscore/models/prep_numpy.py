"""A fitted pipeline's transform steps ("prep", an optional "select") replayed with NumPy: the same matrix, less overhead.

sklearn's ColumnTransformer costs milliseconds per call whatever the row count (input validation, joblib dispatch,
pandas output), and scoring one customer through five models paid it about ten times: more than the models
themselves. :func:`compile_transform` reads the fitted parameters of the steps the model zoo builds
(``SimpleImputer``, ``ClippedLog1p``, ``StandardScaler``, ``OneHotEncoder`` with ``handle_unknown="ignore"``,
passthrough, selectors with ``get_support``, and a step offering ``transform_array`` on a float matrix of its fitted
columns, as the ``custbase`` BG/NBD branch's ``CustomerBaseFeatures`` does) and replays them on arrays. A branch
holding any other step runs through sklearn for that branch only, and a later step that is not a selector
runs through sklearn from there on. The compiled transform is checked against sklearn on sample rows when it is
built; if they differ beyond 1e-12 it is not used (a warning says so) and sklearn does every call.

A compiled transform takes a raw frame or a :class:`FeatureRows` of it: scoring converts the feature frame to NumPy
once (:class:`FeatureRows`) and every model's transform reads its columns from those arrays by position, so no
model pays pandas' label lookups (each ``frame[cols]`` costs about a millisecond whatever the row count).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from custscore.models.log_transform import ClippedLog1p

log = logging.getLogger(__name__)
TOLERANCE = 1e-12


class FeatureRows:
    """A raw feature frame converted to NumPy once: numeric columns as floats, the others as objects.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw feature frame (any columns; transforms pick theirs by name).
    """

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        numeric = np.array([dtype.kind in "fiub" for dtype in frame.dtypes], dtype=bool)
        num, cat = np.flatnonzero(numeric), np.flatnonzero(~numeric)
        floats = frame.iloc[:, num].to_numpy(dtype=float) if len(num) else np.empty((len(frame), 0))
        objects = frame.iloc[:, cat].to_numpy(dtype=object) if len(cat) else np.empty((len(frame), 0), object)
        self._setup([str(c) for c in frame.columns], numeric, floats, objects, frame.index)

    @classmethod
    def from_arrays(cls, columns: list[str], numeric: np.ndarray, floats: np.ndarray, objects: np.ndarray,
                    index: pd.Index) -> FeatureRows:
        """Rows built without a frame (the few-customer features): the frame is made only if something asks for it.

        ``floats`` holds the numeric columns and ``objects`` the others, each in ``columns`` order.
        """
        rows = cls.__new__(cls)
        rows._frame = None
        rows._setup(list(columns), np.asarray(numeric, dtype=bool), floats, objects, index)
        return rows

    def _setup(self, columns, numeric, floats, objects, index) -> None:
        self.columns = columns
        self.index = index
        self.position = {c: i for i, c in enumerate(columns)}
        self.numeric = numeric
        self._floats, self._objects = floats, objects
        self._slot = np.empty(len(columns), dtype=int)  # column -> its index in _floats or _objects
        self._slot[numeric] = np.arange(int(numeric.sum()))
        self._slot[~numeric] = np.arange(int((~numeric).sum()))
        self._cells: np.ndarray | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The raw feature frame (built from the arrays on first use when the rows came from them)."""
        if self._frame is None:
            data = {}
            for j, name in enumerate(self.columns):
                k = self._slot[j]
                # an object Series stays object (a bare array of strings would become pandas' string dtype)
                data[name] = self._floats[:, k] if self.numeric[j] else pd.Series(self._objects[:, k], self.index,
                                                                                   object)
            self._frame = pd.DataFrame(data, index=self.index)
        return self._frame

    def __len__(self) -> int:
        return len(self.index)

    def indices(self, names) -> np.ndarray:
        """Positions of ``names`` among the frame's columns (KeyError naming the first missing one)."""
        return np.array([self.position[n] for n in names], dtype=int)

    def all_numeric(self, idx: np.ndarray) -> bool:
        return bool(self.numeric[idx].all())

    def floats(self, idx: np.ndarray) -> np.ndarray:
        """The numeric columns at positions ``idx`` as a float matrix."""
        return self._floats[:, self._slot[idx]]

    def objects(self, idx: np.ndarray) -> np.ndarray:
        """The columns at positions ``idx`` as an object matrix (numbers as Python floats), as ``to_numpy(object)``."""
        if self._cells is None:
            cells = np.empty((len(self), len(self.columns)), dtype=object)
            cells[:, self.numeric] = self._floats
            cells[:, ~self.numeric] = self._objects
            self._cells = cells
        return self._cells[:, idx]

    def select(self, names) -> pd.DataFrame:
        """The frame's columns ``names`` (for steps that only sklearn runs)."""
        return self.frame.iloc[:, self.indices(names)]


def transform_steps(pipeline) -> list:
    """The steps that transform at predict time (samplers such as SMOTE only act during fit)."""
    return [(n, s) for n, s in pipeline.steps[:-1] if s not in (None, "passthrough") and not hasattr(s, "fit_resample")]


def sklearn_transform(pipeline, X: pd.DataFrame) -> np.ndarray:
    """Raw frame -> the float matrix the "model" step sees, through sklearn."""
    Z = X
    for _, step in transform_steps(pipeline):
        Z = step.transform(Z)
    Z = Z.toarray() if hasattr(Z, "toarray") else Z
    return np.asarray(Z, dtype=float)


def _is_nan(value) -> bool:
    return isinstance(value, float) and value != value


def _imputer(step) -> Callable | None:
    if getattr(step, "add_indicator", False) or not hasattr(step, "statistics_"):
        return None
    stats = np.asarray(step.statistics_)
    if not getattr(step, "keep_empty_features", False) and stats.dtype.kind == "f" and np.isnan(stats).any():
        return None  # sklearn drops those columns
    missing = step.missing_values
    if missing is None:
        def run(X):
            X = np.array(X, dtype=object, copy=True)
            mask = X == None  # noqa: E711 - element-wise, as sklearn masks None
            X[mask] = np.broadcast_to(stats, X.shape)[mask]
            return X
        return run
    if not _is_nan(missing):
        return None

    def run(X):
        if X.dtype == object:
            X = np.array(X, copy=True)
            mask = X != X  # float NaN only, as sklearn's object NaN mask
            X[mask] = np.broadcast_to(stats, X.shape)[mask]
            return X
        X = np.asarray(X, dtype=float)
        return np.where(np.isnan(X), stats.astype(float), X)
    return run


def _one_hot(step) -> Callable | None:
    if step.handle_unknown != "ignore" or getattr(step, "drop_idx_", None) is not None \
            or getattr(step, "_infrequent_enabled", False):
        return None
    cats = [np.asarray(c, dtype=object) for c in step.categories_]
    if any(_is_nan(v) or v is None for c in cats for v in c):
        return None

    def run(X):
        X = np.asarray(X, dtype=object)
        return np.hstack([(X[:, j, None] == c[None, :]).astype(float) for j, c in enumerate(cats)]) \
            if cats else np.empty((len(X), 0))
    return run


def _scaler(step) -> Callable:
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def run(X):
        X = np.asarray(X, dtype=float)
        if mean is not None:
            X = X - mean
        if scale is not None:
            X = X / scale
        return X
    return run


def _log1p(step) -> Callable:
    cols = np.asarray(step.columns_, dtype=int)

    def run(X):
        X = np.array(X, dtype=float, copy=True)
        if len(cols):
            X[:, cols] = np.log1p(np.clip(X[:, cols], 0.0, None))
        return X
    return run


def _step(step) -> Callable | None:
    """A NumPy replay of one fitted transformer, or None when it is not one the zoo builds."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    if step in (None, "passthrough") or (type(step) is FunctionTransformer and step.func is None):
        return lambda X: X
    if type(step) is SimpleImputer:
        return _imputer(step)
    if type(step) is StandardScaler:
        return _scaler(step)
    if type(step) is ClippedLog1p:
        return _log1p(step)
    if type(step) is OneHotEncoder:
        return _one_hot(step)
    if callable(getattr(step, "transform_array", None)) and getattr(step, "append", True) is False:
        return step.transform_array  # a step with its own NumPy replay (CustomerBaseFeatures: the custbase branch)
    if hasattr(step, "steps"):
        parts = [_step(s) for _, s in step.steps]
        if any(p is None for p in parts):
            return None

        def run(X):
            for p in parts:
                X = p(X)
            return X
        return run
    return None


def _column_transformer(ct) -> Callable | None:
    if getattr(ct, "sparse_output_", False):
        return None
    names = list(ct.feature_names_in_)
    width = max((sl.stop for sl in ct.output_indices_.values()), default=0)
    branches = []
    for name, trans, _ in ct.transformers_:
        sl = ct.output_indices_[name]
        if trans == "drop" or sl.stop == sl.start:
            continue
        cols = [names[i] for i in np.asarray(ct._transformer_to_input_indices[name], dtype=int)]
        run = _step(trans)
        branches.append((sl, cols, run, trans))
    positions: dict[tuple, list] = {}  # FeatureRows' column order -> per branch the column positions

    def transform(X: pd.DataFrame | FeatureRows) -> np.ndarray:
        rows = X if isinstance(X, FeatureRows) else FeatureRows(X)
        key = tuple(rows.columns)
        where = positions.get(key)
        if where is None:
            where = positions[key] = [rows.indices(cols) for _, cols, _, _ in branches]
            if len(positions) > 16:  # a caller cycling through column orders: keep only the latest
                positions.clear()
                positions[key] = where
        out = np.empty((len(rows), width))
        for (sl, cols, run, trans), idx in zip(branches, where, strict=True):
            if run is None:
                Z = trans.transform(rows.select(cols))
                Z = Z.toarray() if hasattr(Z, "toarray") else Z
            else:
                Z = run(rows.floats(idx) if rows.all_numeric(idx) else rows.objects(idx))
            out[:, sl] = np.asarray(Z, dtype=float)
        return out
    return transform


def compile_transform(pipeline, sample: pd.DataFrame | None = None) -> Callable[[pd.DataFrame], np.ndarray]:
    """A function raw frame -> the matrix the "model" step sees, replaying fitted steps with NumPy where it can.

    Parameters
    ----------
    pipeline : sklearn or imblearn Pipeline (or a calibrated one)
        Fitted, with "prep" (a ColumnTransformer) first.
    sample : pandas.DataFrame, optional
        Raw rows the compiled transform must reproduce (to 1e-12) against sklearn; without rows, or when they
        differ, sklearn runs every call.

    Returns
    -------
    callable
        ``transform(X_raw) -> ndarray`` of floats; ``X_raw`` a frame or a :class:`FeatureRows` holding at least the
        pipeline's columns.
    """
    steps = transform_steps(pipeline)
    names = list(getattr(steps[0][1], "feature_names_in_", ())) if steps else []

    def reference(X: pd.DataFrame | FeatureRows) -> np.ndarray:
        if isinstance(X, FeatureRows):
            X = X.select(names) if names else X.frame
        return sklearn_transform(pipeline, X)

    if not steps or not hasattr(steps[0][1], "transformers_") or sample is None or not len(sample):
        return reference
    first = _column_transformer(steps[0][1])
    if first is None:
        return reference
    later = []
    for _, step in steps[1:]:
        later.append(step.get_support(indices=True) if hasattr(step, "get_support") else step)

    def transform(X: pd.DataFrame | FeatureRows) -> np.ndarray:
        Z = first(X)
        for step in later:
            if isinstance(step, np.ndarray):
                Z = Z[:, step]
            else:
                Z = step.transform(Z)
                Z = np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z, dtype=float)
        return Z

    try:
        got, want = transform(sample), reference(sample)
        same = got.shape == want.shape and np.allclose(got, want, rtol=0.0, atol=TOLERANCE, equal_nan=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use the replay
        log.warning("NumPy replay of the pipeline's prep failed on sample rows (%s); using sklearn", exc)
        return reference
    if not same:
        log.warning("NumPy replay of the pipeline's prep differs from sklearn on sample rows; using sklearn")
        return reference
    return transform
