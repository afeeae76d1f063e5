"""The production models of every task, loaded once, scoring customers with their top SHAP reasons.

Used by ``custscore predict`` / ``explain`` and by the scorer worker, so a
customer gets the same features, predictions and reasons on every path.
Risk bands come from the churn model's stored threshold ``t``: ``high`` when
the probability is at least ``t``, ``medium`` from ``t / 2``, else ``low``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from custscore.config import Settings
from custscore.errors import ModelError
from custscore.models import (
    calibration,
    customer_base_family,
    explain,
    feature_catalogue,
    feature_reads,
    feature_words,
    features,
    input_version,
    population,
    registry,
)
from custscore.models.few_features import FEW, few_customer_rows
from custscore.models.prep_numpy import FeatureRows
from custscore.store.base import Store
from custscore.store.plain import plain
from custscore.store.schema import MODELS

log = logging.getLogger(__name__)
TASKS = ("churn", "satisfaction", "segment", population.TASK)
TOP_K = 3
PHRASES = {"churn": "churn risk", "satisfaction": "predicted satisfaction", "segment": "this segment",
           population.TASK: population.PHRASE}
# The worker's hot path computes no SHAP values for these tasks: satisfaction's exact TreeSHAP cost ~100x its
# prediction and fed only the prediction records (the reasons shown come from churn / first_purchase). The records
# keep the features and model versions, so ``predict`` / ``explain`` / the API still compute them exactly on demand.
HOT_PATH_NO_SHAP = ("satisfaction",)
ONE_BLAS_THREAD = 32  # up to this many rows per call (the API's), one BLAS thread: see predict_rows
OUTPUTS = ("churn_probability", "risk", "first_purchase_probability", *customer_base_family.SCORE_FIELDS,
           "satisfaction", "segment", "segment_name")


@dataclass
class CustomerScore:
    """What scoring one customer produced (see the scorer's write-back)."""

    customer_id: str
    input_version: str
    score: dict
    shap: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    error: str | None = None
    reasons_by_task: dict = field(default_factory=dict)  # task -> top-k reasons (``score.reasons`` is one of them)


def production_versions(store: Store) -> dict[str, str]:
    """task -> production version, one cheap read of the ``models`` collection."""
    out = {}
    for doc in store[MODELS].find({"aliases": "production"}, projection={"task": 1, "version": 1}):
        if doc.get("task") in TASKS:
            out[doc["task"]] = doc["version"]
    return out


class ProductionModels:
    """Loaded, verified production models (churn, satisfaction, segment - whichever are promoted)."""

    def __init__(self, loaded: dict[str, registry.LoadedModel], seed: int = 0, currency: str = ""):
        if not loaded:
            raise ModelError("no production model is registered; train one with `custscore train --task all`")
        self.loaded = loaded
        self.currency = currency  # how money reads in reasons (Settings.currency)
        self.explainers = {}
        self.columns = {}  # task -> the raw feature columns its model reads, in order (read once from the manifest)
        for task, model in loaded.items():
            extra = model.manifest.get("extra") or {}
            background = pd.DataFrame(extra.get("background") or [])
            cols = [f["name"] for f in model.manifest["features"]]
            self.columns[task] = cols
            background = background.set_index("customer_id")[cols] if len(background) else None
            kind = model.manifest.get("kind", "regression")
            self.explainers[task] = explain.make_explainer(model.pipeline, _typed(background, cols), kind, seed=seed)
        # once per loaded models, not per call: finding the OpenMP libraries scans the process's mappings (~5 ms)
        self._threadpools = ThreadpoolController()
        self._describe = functools.partial(feature_words.describe, currency=currency)
        self.versions = {task: m.version for task, m in loaded.items()}
        self.categories = sorted({c for m in loaded.values() for c in (m.manifest.get("extra") or {}).get("categories")
                                  or ()})
        self.threshold = (loaded["churn"].manifest.get("threshold") if "churn" in loaded else None) or 0.5
        seg = loaded.get("segment")
        self.segment_names = {int(k): v for k, v in
                              ((seg.manifest.get("extra") or {}).get("segment_names") or {}).items()} if seg else {}

    def risk(self, p: float) -> str:
        """Risk band of a churn probability against the stored threshold."""
        return "high" if p >= self.threshold else "medium" if p >= self.threshold / 2 else "low"

    def predict_frame(self, X: pd.DataFrame, skip_shap: tuple[str, ...] = ()
                      ) -> tuple[pd.DataFrame, dict[str, explain.Explanation]]:
        """Predictions (one column per output) and SHAP explanations per task (less ``skip_shap``) for a feature frame."""
        outputs, explanations = self.predict_rows(FeatureRows(X), skip_shap)
        return pd.DataFrame(outputs, index=X.index), explanations

    def predict_rows(self, rows: FeatureRows, skip_shap: tuple[str, ...] = ()
                     ) -> tuple[dict[str, np.ndarray], dict[str, explain.Explanation]]:
        """:meth:`predict_frame` on a feature frame already converted to NumPy: output name -> array per row."""
        # One OpenMP thread (see train._train: it spin-waits). For a few customers (the API's calls) one BLAS thread
        # too: OpenBLAS's second thread made the MLP's forward pass over a SHAP call's 1,450 rows 28 ms instead of
        # 1.3 ms; larger batches (the worker's) keep BLAS's own threads.
        with self._threadpools.limit(limits=1, user_api=None if len(rows) <= ONE_BLAS_THREAD else "openmp"):
            return self._predict_rows(rows, skip_shap)

    def _predict_rows(self, rows: FeatureRows, skip_shap: tuple[str, ...] = ()
                      ) -> tuple[dict[str, np.ndarray], dict[str, explain.Explanation]]:
        # Customers who never bought (as of X's date) go to the first_purchase model, buyers to churn: a model never
        # scores or explains a population it was not trained on (models/population.py). Rows outside a task's
        # population get zero contributions, hence no reasons from it.
        n = len(rows)
        out: dict[str, np.ndarray] = {}
        explanations = {}
        split = "churn" in self.loaded or population.TASK in self.loaded
        new = _never_bought(rows) if split else None
        if new is not None:
            out["churn_probability"] = np.full(n, np.nan)
            out["risk"] = np.where(new, population.BAND, None).astype(object)
        for task, model in self.loaded.items():
            ex = self.explainers[task]
            cols = self.columns[task]
            Z = ex.transform(rows)  # one transform per model, shared by the prediction and its SHAP values
            if task in ("churn", population.TASK):
                members = ~new if task == "churn" else new
                raw = np.asarray(ex.predictor.predict_proba(Z[members]), dtype=float) if members.any() \
                    else np.empty((0, 2))
                calibrator = getattr(model.pipeline, "calibrator", None)  # a CalibratedPipeline's
                p = calibrator.transform(raw[:, 1]) if calibrator is not None and len(raw) else raw[:, 1]
                if task == "churn":
                    out["churn_probability"][members] = p
                    out["risk"][members] = [self.risk(v) for v in p]
                    values = _customer_base_values(model.pipeline, rows, members) if members.any() else None
                    for name in customer_base_family.SCORE_FIELDS if values is not None else ():
                        out.setdefault(name, np.full(n, np.nan))[members] = values[name]
                else:
                    out.setdefault("first_purchase_probability", np.full(n, np.nan))[members] = p
                    out["churn_probability"][members] = 1.0 - p  # P(no purchase within the horizon), as for buyers
                explanations[task] = _within(ex, Z, cols, members, raw)
                continue
            pred = None
            if task == "satisfaction":
                pred = ex.predictor.predict(Z)
                out["satisfaction"] = np.clip(np.asarray(pred, dtype=float).reshape(len(Z), -1)[:, 0], 1.0, 10.0)
            elif task == "segment":
                seg = np.asarray(ex.predictor.predict(Z)).astype(int)
                out["segment"] = seg
                out["segment_name"] = np.array([self.segment_names.get(int(s), f"segment {s}") for s in seg],
                                               dtype=object)
            if task not in skip_shap:
                explanations[task] = ex.explain_transformed(Z, cols, pred)
        return out, explanations

    def reasons(self, explanations: dict[str, explain.Explanation], X: pd.DataFrame | FeatureRows,
                k: int = TOP_K) -> dict[str, list]:
        """task -> per row the top-k reasons (feature, value, contribution, sentence)."""
        rows = X if isinstance(X, FeatureRows) else FeatureRows(X)
        return {task: explain.top_reasons(e, rows, k=k, describe=self._describe, target_phrase=PHRASES.get(task, task))
                for task, e in explanations.items()}

    def score_documents(self, customers: list[dict], events: pd.DataFrame | list[dict], now: dt.datetime,
                        k: int = TOP_K, skip_shap: tuple[str, ...] = ()) -> list[CustomerScore]:
        """Score customer documents given their events (no store access); no SHAP for the tasks in ``skip_shap``.

        ``events`` is a frame or a list of event documents; with documents and at most ``few_features.FEW``
        customers the features skip pandas (same numbers).
        """
        if not customers:
            return []
        rows = None  # the features as NumPy, once, for every model, the reasons and the records
        if not isinstance(events, pd.DataFrame) and len(customers) <= FEW:
            rows = few_customer_rows(customers, events, now, self.categories)
        if rows is None:
            rows = FeatureRows(features.customer_features(customers, events, now, self.categories))
        versions = input_version.input_versions(customers, events)
        preds, explanations = self.predict_rows(rows, skip_shap)
        reasons = self.reasons(explanations, rows, k=k)
        new = _never_bought(rows)
        out = []
        outputs = [n for n in OUTPUTS if n in preds]
        pred_rows = [dict(zip(outputs, values, strict=True))
                     for values in zip(*(preds[n].tolist() for n in outputs), strict=True)] if outputs else \
            [{} for _ in range(len(rows))]
        feature_rows = rows.objects(np.arange(len(rows.columns))).tolist()
        for i, cid in enumerate(rows.index):
            skip = "churn" if new[i] else population.TASK  # the model of the other population says nothing about this row
            tasks = [t for t in reasons if t != skip]
            main = next((t for t in ("churn", population.TASK) if t in tasks), tasks[0] if tasks else None)
            score = {"model_versions": dict(self.versions), "reasons": reasons[main][i] if main else [],
                     "reasons_task": main}
            for name in outputs:
                value = plain(pred_rows[i][name])
                if value is None and name in ("churn_probability", "first_purchase_probability",
                                              *customer_base_family.SCORE_FIELDS):
                    continue
                score[name] = round(value, 4) if isinstance(value, float) else value
            shap_vectors = {task: dict(zip(e.feature_names, np.round(e.values[i], 5).tolist(), strict=True))
                            for task, e in explanations.items() if task != skip}
            feats = {c: plain(v) for c, v in zip(rows.columns, feature_rows[i], strict=True)}
            out.append(CustomerScore(cid, versions[cid], score, shap_vectors, feats,
                                     reasons_by_task={task: reasons[task][i] for task in tasks}))
        return out

    def score_batch(self, store: Store, customers: list[dict], now: dt.datetime) -> list[CustomerScore]:
        """Score customer documents, reading their events from the store (the worker's path)."""
        ids = [str(c.get("_id", c.get("customer_id"))) for c in customers]
        return self.score_documents(customers, feature_reads.read_events(store, ids, until=now), now, skip_shap=HOT_PATH_NO_SHAP)


def _customer_base_values(pipeline, rows: FeatureRows, members: np.ndarray) -> dict[str, np.ndarray] | None:
    """The churn model's BG/NBD values (p_alive, ...) of the rows in ``members``, from the arrays when it can."""
    base = calibration.base_pipeline(pipeline)
    if all(c in rows.position for c in customer_base_family.INPUTS):
        idx = rows.indices(customer_base_family.INPUTS)
        if rows.all_numeric(idx):
            # every row, as the churn model's prep asked a moment ago, so the step's last answer serves (see
            # CustomerBaseFeatures.transform_array); the members' rows are then taken
            values = customer_base_family.customer_base_arrays(base, rows.floats(idx))
            if values is not NotImplemented:
                return None if values is None else {name: v[members] for name, v in values.items()}
    values = customer_base_family.customer_base_values(base, rows.frame[members])
    return None if values is None else {name: values[name].to_numpy(dtype=float) for name in values.columns}


def _never_bought(rows: FeatureRows) -> np.ndarray:
    """:func:`population.never_bought` on converted rows (a boolean array)."""
    if "orders_total" not in rows.position:
        return population.never_bought(rows.frame).to_numpy()  # its error names the missing column
    orders = rows.floats(rows.indices(["orders_total"]))[:, 0]
    return np.nan_to_num(orders, nan=0.0) <= 0


def _within(explainer: explain.Explainer, Z: np.ndarray, cols: list[str], rows: np.ndarray, outputs: np.ndarray
            ) -> explain.Explanation:
    """SHAP values for the rows selected by ``rows`` of the transformed ``Z``; zeros (no reasons) elsewhere."""
    values = np.zeros((len(Z), len(cols)))
    if not rows.any():
        return explain.Explanation(values, 0.0, list(cols), explainer.units)
    part = explainer.explain_transformed(Z[rows], cols, outputs)
    values[rows] = part.values
    return explain.Explanation(values, part.base_value, part.feature_names, part.units)


def _typed(frame: pd.DataFrame | None, cols: list[str]) -> pd.DataFrame | None:
    if frame is None:
        return None
    for c in cols:
        frame[c] = frame[c].astype(float) if feature_catalogue.feature_info(c).kind == "num" else frame[c].astype(object)
    return frame


def load_production(store: Store, settings: Settings, tasks: tuple[str, ...] = TASKS) -> ProductionModels:
    """Load and verify every promoted model among ``tasks``.

    Raises
    ------
    ModelError
        Nothing promoted, or an artifact failed verification (nothing is loaded then).
    """
    versions = production_versions(store)
    loaded = {t: registry.load_model(store, settings, t) for t in tasks if t in versions}
    return ProductionModels(loaded, currency=settings.currency)
