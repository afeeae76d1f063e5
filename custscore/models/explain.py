"""SHAP explanations per original feature: one explainer per model family, top reasons, figures.

Every explainer works on the matrix the "model" step sees (after "prep" and an optional "select"), then sums the
columns that came from one raw feature (the one-hot columns of a categorical, say) back onto it, so contributions
are always per column of the raw feature frame.

- trees / forests / (Hist)GradientBoosting: ``shap.TreeExplainer`` (path-dependent, exact);
- XGBoost: the booster's own ``pred_contribs`` (exact TreeSHAP; as fast as shap's TreeExplainer, which calls it);
- linear models: exact linear SHAP ``coef * (x - mean(background))``;
- anything else (Keras MLP, voting, stacking): a permutation estimate against <= 50 background rows, vectorised over
  the whole batch (one model call per feature step instead of shap's per-row loop, which measured ~3 s a row in
  shap 0.51), with one feature order per row drawn from the row's own values (:func:`row_orders`), so a customer's
  reasons do not depend on the batch it was scored in. Masking a raw feature masks all its transformed columns, which equals masking it in the raw frame
  because "prep" works column by column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custscore.errors import ConfigError, CustscoreError, InputError, ModelError
from custscore.models.direct_predict import DirectPredictor
from custscore.models.prep_numpy import FeatureRows, compile_transform, sklearn_transform, transform_steps
from custscore.store.plain import plain

log = logging.getLogger(__name__)

KINDS = ("regression", "classification", "segment")
_BOOSTED = ("GradientBoosting", "HistGradientBoosting")  # trees summing to a margin (log-odds for classifiers)
_TREES = ("DecisionTree", "ExtraTree", "RandomForest", *_BOOSTED)
_CHUNK_ROWS = 65536  # rows per model call in the permutation explainer: bounded memory, few calls
_BLOCK_ROWS = 256  # rows whose permutation steps are stacked at once (memory: rows x features x columns)


@dataclass
class Explanation:
    """SHAP values for a batch: ``values`` is n x features, in the columns (and order) of the raw frame."""

    values: np.ndarray
    base_value: float | np.ndarray
    feature_names: list[str]
    units: str
    explained_class: np.ndarray | None = None  # per-row class label explained, multi-class only

    @property
    def output(self) -> np.ndarray:
        """The explained model output per row: base value plus the sum of contributions."""
        return np.asarray(self.base_value) + self.values.sum(axis=1)


class Explainer:
    """Explains a fitted pipeline's predictions on raw feature frames; build it with :func:`make_explainer`."""

    def __init__(self, pipeline, kind: str, method: str, units: str, raw_names: list[str], col_map: np.ndarray,
                 background_t: np.ndarray, seed: int = 0, transform=None):
        self.pipeline, self.kind, self.method, self.units = pipeline, kind, method, units
        self.raw_names, self.col_map, self.background_t, self.seed = raw_names, col_map, background_t, seed
        self.model = pipeline.named_steps["model"]
        self.predictor = DirectPredictor(self.model)  # the model's predictions on ``transform``'s output, unchecked
        # raw frame or FeatureRows -> the matrix the model step sees (sklearn, or its NumPy replay checked against it)
        self.transform = transform or (lambda X: sklearn_transform(
            pipeline, X.select(raw_names) if isinstance(X, FeatureRows) else X))
        self._multi = kind != "regression" and len(getattr(self.model, "classes_", ())) > 2
        self._tree = None
        self._background_mean = None  # the permutation explainer's mean output over the background, computed once
        if method == "tree":
            import shap

            self._tree = shap.TreeExplainer(self.model)

    def explain(self, X_raw: pd.DataFrame) -> Explanation:
        """Explain every row of ``X_raw``.

        Parameters
        ----------
        X_raw : pandas.DataFrame
            Raw feature frame (the columns the pipeline was fitted on; extra columns get zero contributions).

        Returns
        -------
        Explanation
            Contributions per raw column; for classifiers of the positive class (binary) or of each row's predicted
            class (multi-class), in ``self.units``.
        """
        missing = [c for c in self.raw_names if c not in X_raw.columns]
        if missing:
            raise InputError(f"feature frame lacks column(s) {missing}; pass every feature the model was trained on")
        return self.explain_transformed(self.transform(X_raw[self.raw_names]), list(X_raw.columns))

    def explain_transformed(self, Xt: np.ndarray, columns: list[str], outputs: np.ndarray | None = None
                            ) -> Explanation:
        """Explain rows already transformed by :attr:`transform` (the scorer shares one matrix for predict and SHAP).

        Parameters
        ----------
        Xt : ndarray
            ``self.transform(X_raw[self.raw_names])``.
        columns : list of str
            The raw frame's columns: contributions come back in this order (zero for columns the model does not read).
        outputs : ndarray, optional
            The model step's ``predict_proba(Xt)`` (classifiers) or ``predict(Xt)`` (regression), when the caller
            has it already.
        """
        n = len(Xt)
        k = None
        if self.kind != "regression":
            if self._multi:
                k = (self.predictor.predict_proba(Xt) if outputs is None else np.asarray(outputs)).argmax(axis=1)
            else:
                k = np.ones(n, dtype=int)
        if self.method == "permutation":
            phi, base = self._by_permutation(Xt, k, outputs)
        else:
            phi, base = getattr(self, f"_by_{self.method}")(Xt, k)
            phi = _group_sum(phi, self.col_map, len(self.raw_names))
        values = np.zeros((n, len(columns)))
        where = {c: i for i, c in enumerate(columns)}
        values[:, [where[c] for c in self.raw_names]] = phi
        base = np.asarray(base, dtype=float)
        if not self._multi and base.ndim:
            base = base.reshape(-1)[0]
        cls = np.asarray(self.model.classes_)[k] if self._multi else None
        return Explanation(values, float(base) if base.ndim == 0 else base, list(columns), self.units, cls)

    def _by_tree(self, Xt, k):
        sv = self._tree.shap_values(Xt, check_additivity=False)
        sv = np.stack(sv, axis=-1) if isinstance(sv, list) else np.asarray(sv)
        ev = np.atleast_1d(np.asarray(self._tree.expected_value, dtype=float))
        if sv.ndim == 3:
            return sv[np.arange(len(Xt)), :, k], ev[k]
        return sv, ev[0]

    def _by_xgboost(self, Xt, k):
        import xgboost

        kwargs = {}
        best = getattr(self.model, "best_iteration", None) if hasattr(self.model, "best_score") else None
        if best is not None:
            kwargs["iteration_range"] = (0, best + 1)
        c = self.model.get_booster().predict(xgboost.DMatrix(Xt), pred_contribs=True, validate_features=False,
                                             **kwargs)
        if c.ndim == 3:
            c = c[np.arange(len(Xt)), k, :]
        return c[:, :-1].astype(float), c[:, -1].astype(float)

    def _by_linear(self, Xt, k):
        coef = np.atleast_2d(self.model.coef_)
        intercept = np.atleast_1d(self.model.intercept_)
        mean = self.background_t.mean(axis=0)
        if coef.shape[0] == 1:
            return (Xt - mean) * coef[0], float(intercept[0] + mean @ coef[0])
        w = coef[k]
        return (Xt - mean) * w, intercept[k] + w @ mean

    def _output(self, Z, k):
        """Model output in explained units for rows ``Z``; ``k`` is the class per row (or None)."""
        if self.kind == "regression":
            return np.asarray(self.predictor.predict(Z), dtype=float).reshape(len(Z), -1)[:, 0]
        return np.asarray(self.predictor.predict_proba(Z), dtype=float)[np.arange(len(Z)), k]

    def _by_permutation(self, Xt, k, outputs=None):
        """Antithetic permutation SHAP over raw-feature groups, one order per row, vectorised over rows and steps.

        Every step of both passes for a block of rows goes to the model in one call (chunked at ``_CHUNK_ROWS``
        rows), so one customer costs two model calls, not two per feature; the background's mean output is
        computed once per explainer.
        """
        n, q = Xt.shape
        bg = self.background_t
        used = np.unique(self.col_map)
        groups = len(used)
        col_group = np.searchsorted(used, self.col_map)  # per transformed column, its raw-feature group
        if self._background_mean is None:
            out = self._output(bg, None) if k is None else np.asarray(self.predictor.predict_proba(bg), dtype=float)
            self._background_mean = np.asarray(out, dtype=float).mean(axis=0)
        base = np.full(n, float(self._background_mean)) if k is None else self._background_mean[k]
        if outputs is None:
            full = self._output(Xt, k)
        elif k is None:
            full = np.asarray(outputs, dtype=float).reshape(n, -1)[:, 0]
        else:
            full = np.asarray(outputs, dtype=float)[np.arange(n), k]
        order = row_orders(Xt, groups, self.seed)
        phi = np.zeros((n, groups))
        steps = np.arange(groups - 1)
        for start in range(0, n, _BLOCK_ROWS):
            sl = slice(start, min(n, start + _BLOCK_ROWS))
            b = sl.stop - sl.start
            rows = np.arange(b)[:, None]
            for perm in (order[sl], order[sl, ::-1]):
                rank = np.empty_like(perm)
                rank[rows, perm] = np.arange(groups)[None, :]
                # step s has the first s + 1 groups of the row's order set to the row's values
                masks = rank[:, col_group][None, :, :] <= steps[:, None, None]  # (groups - 1, b, q)
                kk = None if k is None else np.tile(k[sl], groups - 1)
                xs = np.broadcast_to(Xt[sl], (groups - 1, b, q)).reshape(-1, q)
                cur = self._masked_mean(xs, bg, masks.reshape(-1, q), kk).reshape(groups - 1, b)
                chain = np.vstack([base[sl][None, :], cur, full[sl][None, :]])  # (groups + 1, b)
                phi[sl][rows, perm] += (chain[1:] - chain[:-1]).T
        values = np.zeros((n, len(self.raw_names)))
        values[:, used] = phi / 2
        return values, base

    def _masked_mean(self, Xt, bg, mask, k):
        """Mean output over the background with each row's masked columns set to that row's values."""
        m, q = bg.shape
        step = max(1, _CHUNK_ROWS // m)
        out = np.empty(len(Xt))
        for i in range(0, len(Xt), step):
            sl = slice(i, i + step)
            Z = np.where(mask[sl, None, :], Xt[sl, None, :], bg[None, :, :]).reshape(-1, q)
            kz = None if k is None else np.repeat(k[sl], m)
            out[sl] = self._output(Z, kz).reshape(-1, m).mean(axis=1)
        return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_orders(Xt: np.ndarray, n_groups: int, seed: int = 0) -> np.ndarray:
    """One pseudo-random order of ``n_groups`` features per row, drawn from the row's own values and ``seed``.

    The permutation estimate depends on the order, so it must not depend on where a row sits in a batch: a
    customer explained alone (``explain``, the API) gets exactly the order, hence the reasons, that the worker's
    batch gave it, and equal rows get equal orders.
    """
    bits = (np.asarray(Xt, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 hashes like 0.0
    h = np.full(len(bits), np.uint64(seed) ^ _GOLDEN, dtype=np.uint64)
    for j in range(bits.shape[1]):
        h = _mix(h ^ bits[:, j])
    keys = _mix(h[:, None] + _GOLDEN * np.arange(1, n_groups + 1, dtype=np.uint64)[None, :])
    return np.argsort(keys, axis=1, kind="stable")


def make_explainer(pipeline, background: pd.DataFrame, kind: str, seed: int = 0, *, max_background: int = 50,
                   target_units: str = "target units") -> Explainer:
    """Pick and build the explainer for a fitted pipeline by its final estimator's family.

    Parameters
    ----------
    pipeline : sklearn or imblearn Pipeline
        Fitted, with steps "prep" (ColumnTransformer), optional "select", optional "smote", and "model".
    background : pandas.DataFrame
        Raw training features; the linear explainer uses their mean, the permutation explainer a sample of
        ``max_background`` rows.
    kind : {"regression", "classification", "segment"}
        Task kind.
    seed : int
        Seed for the background sample and the permutation orders.
    max_background : int
        Background rows for the model-agnostic explainer (its cost grows linearly with it).
    target_units : str
        ``units`` reported for regression.

    Returns
    -------
    Explainer
    """
    if kind not in KINDS:
        raise ConfigError(f"kind {kind!r} is not a task kind; use one of {', '.join(KINDS)}")
    if "model" not in getattr(pipeline, "named_steps", {}):
        raise ModelError("pipeline has no step named 'model'; build it with the model zoo's fixed step names")
    model = pipeline.named_steps["model"]
    raw_names, col_map = column_map(pipeline)
    name, module = type(model).__name__, type(model).__module__
    if module.startswith("xgboost"):
        method = "xgboost"
    elif module.startswith("sklearn.linear_model") and hasattr(model, "coef_"):
        method = "linear"
    elif module.startswith(("sklearn.tree", "sklearn.ensemble")) and name.startswith(_TREES):
        method = "tree"
    else:
        method = "permutation"
    if kind == "regression":
        units = target_units
    elif method == "permutation" or (method == "tree" and not name.startswith(_BOOSTED)):
        units = "probability"  # averaged trees of class frequencies have no additive log-odds form
    else:
        units = "log-odds"
    try:
        return _build(pipeline, background, kind, method, units, raw_names, col_map, seed, max_background)
    except Exception as exc:  # noqa: BLE001 - shap rejects some tree variants (multi-class HGB); fall back
        if method != "tree" or isinstance(exc, CustscoreError):
            raise
        log.warning("TreeExplainer cannot take %s (%s); using the permutation explainer", name, exc)
        units = target_units if kind == "regression" else "probability"
        return _build(pipeline, background, kind, "permutation", units, raw_names, col_map, seed, max_background)


def _build(pipeline, background, kind, method, units, raw_names, col_map, seed, max_background) -> Explainer:
    """Transform the background the method needs and construct the explainer."""
    missing = [c for c in raw_names if c not in background.columns]
    if missing:
        raise InputError(f"background frame lacks column(s) {missing}; pass the raw training features")
    rows = background[raw_names]
    if method == "permutation" and len(rows) > max_background:
        rows = rows.sample(max_background, random_state=seed)
    transform = compile_transform(pipeline, background[raw_names].head(max_background))
    bg_t = transform(rows) if method in ("linear", "permutation") else np.empty((0, 0))
    log.debug("explainer: %s in %s", method, units)
    return Explainer(pipeline, kind, method, units, raw_names, col_map, bg_t, seed, transform)


def column_map(pipeline) -> tuple[list[str], np.ndarray]:
    """Raw feature names and, per column the "model" step sees, the index of the raw feature it came from."""
    raw, cmap = None, None
    for name, step in transform_steps(pipeline):
        if cmap is None:
            if not hasattr(step, "transformers_"):
                raise ModelError(f"pipeline step {name!r} comes before 'prep'; put the ColumnTransformer first")
            raw, cmap = _ct_map(step)
        else:
            cmap = cmap[_step_map(step, len(cmap))]
    if cmap is None:  # the model takes the raw (numeric) columns directly
        raw = list(getattr(pipeline.named_steps["model"], "feature_names_in_", []))
        if not raw:
            raise ModelError("pipeline has no 'prep' step and its model has no feature_names_in_; fit it on a DataFrame")
        cmap = np.arange(len(raw))
    return list(raw), np.asarray(cmap, dtype=int)


def _ct_map(ct) -> tuple[list[str], np.ndarray]:
    """Map each ColumnTransformer output column to the index of its input column."""
    names = list(ct.feature_names_in_)
    cmap = np.full(max((sl.stop for sl in ct.output_indices_.values()), default=0), -1)
    for name, trans, _ in ct.transformers_:
        sl = ct.output_indices_[name]
        if trans == "drop" or sl.stop == sl.start:
            continue
        idx = np.asarray(ct._transformer_to_input_indices[name], dtype=int)  # resolves names, masks and callables
        local = np.arange(len(idx)) if trans == "passthrough" else _step_map(trans, len(idx))
        if len(local) != sl.stop - sl.start:
            raise ModelError(f"prep transformer {name!r} has {sl.stop - sl.start} output columns but {len(local)} "
                             "were mapped back to raw features; use one-to-one steps or a OneHotEncoder")
        cmap[sl] = idx[local]
    return names, cmap


def _step_map(step, n_in: int) -> np.ndarray:
    """Per output column of a fitted transformer, the index of the input column it comes from."""
    if hasattr(step, "steps"):
        local = np.arange(n_in)
        for _, sub in step.steps:
            if sub not in (None, "passthrough"):
                local = local[_step_map(sub, len(local))]
        return local
    if hasattr(step, "categories_") and hasattr(step, "drop_idx_"):  # OneHotEncoder
        counts = getattr(step, "_n_features_outs", None) or [len(c) for c in step.categories_]
        return np.repeat(np.arange(n_in), counts)
    if hasattr(step, "get_support"):
        return step.get_support(indices=True)
    in_names = [str(c) for c in getattr(step, "feature_names_in_", [f"x{i}" for i in range(n_in)])]
    try:
        out = [str(c) for c in step.get_feature_names_out(in_names)]
    except Exception:  # noqa: BLE001 - e.g. FunctionTransformer(np.log1p) without feature_names_out: one-to-one
        return np.arange(n_in)
    pos = {c: i for i, c in enumerate(in_names)}
    if all(c in pos for c in out):
        return np.array([pos[c] for c in out], dtype=int)
    if len(out) == n_in:
        return np.arange(n_in)
    raise ModelError(f"cannot map the output columns of {type(step).__name__} back to raw features; "
                     "use one-to-one steps, a OneHotEncoder or a selector with get_support()")


def _group_sum(phi: np.ndarray, col_map: np.ndarray, n_raw: int) -> np.ndarray:
    """Sum transformed-column contributions onto their raw features."""
    G = np.zeros((phi.shape[1], n_raw))
    G[np.arange(phi.shape[1]), col_map] = 1.0
    return phi @ G


def _default_describe(name: str, value) -> str:
    """Fallback phrase when no describe function is given."""
    return f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}"


def top_reasons(explanation: Explanation, X_raw: pd.DataFrame, k: int = 3, describe=None,
                target_phrase: str = "churn risk") -> list[list[dict]]:
    """The ``k`` largest contributions per row, with a readable sentence each.

    Parameters
    ----------
    explanation : Explanation
        From :meth:`Explainer.explain` on ``X_raw``.
    X_raw : pandas.DataFrame or FeatureRows
        The explained raw rows (for the feature values).
    k : int
        Reasons per row; features with exactly zero contribution are never listed.
    describe : callable, optional
        ``describe(name, value) -> str``, e.g. ``custscore.models.features.describe``; default ``"name = value"``.
    target_phrase : str
        What the model predicts, as in "... raises churn risk".

    Returns
    -------
    list of list of dict
        Per row, dicts with ``feature``, ``value`` (plain python, None for missing), ``contribution`` (rounded to 4
        places) and ``sentence``, largest absolute contribution first.
    """
    describe = describe or _default_describe
    names = explanation.feature_names
    cells = X_raw.objects(X_raw.indices(names)) if isinstance(X_raw, FeatureRows) else \
        X_raw[names].to_numpy(dtype=object)
    vals = explanation.values
    order = np.argsort(-np.abs(vals), axis=1, kind="stable")[:, :k]
    result = []
    for i, row in enumerate(order):
        reasons = []
        for j in row:
            c = float(vals[i, j])
            if c == 0.0:
                continue
            value = plain(cells[i, j])
            verb = "raises" if c > 0 else "lowers"
            reasons.append({"feature": names[j], "value": value, "contribution": round(c, 4),
                            "sentence": f"{describe(names[j], value)} {verb} {target_phrase}"})
        result.append(reasons)
    return result


def global_importance(explanation: Explanation) -> pd.Series:
    """Mean absolute SHAP value per feature, largest first."""
    imp = pd.Series(np.abs(explanation.values).mean(axis=0), index=explanation.feature_names, name="mean_abs_shap")
    return imp.sort_values(ascending=False, kind="stable")
