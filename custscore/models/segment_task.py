"""The ``segment`` task: K-Means over a range of k, readable segment names, a rule tree for new customers."""

from __future__ import annotations

import logging
import time

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from custscore.config import Settings
from custscore.models import registry
from custscore.models.dataset import TaskData
from custscore.models.drift import reference_profile
from custscore.models.segment import SegmentModel
from custscore.models.segment_report import elbow_silhouette_figure, rules_text
from custscore.models.task_result import BACKGROUND_ROWS, EXPLAIN_ROWS, TaskResult, explain_sample, register
from custscore.store.base import Store

log = logging.getLogger(__name__)


def train_segment(store: Store, settings: Settings, data: TaskData, options, progress=None):
    """Fit the segmentation, register its rule tree as the production segment model."""
    if progress:
        progress("segment: K-Means over k", 0, 2)
    started = time.perf_counter()
    model = SegmentModel(seed=options.seed).fit(data.X)
    fit_s = time.perf_counter() - started
    if progress:
        progress("segment: rule tree", 1, 2)
    labels_km = model.predict_kmeans(data.X)
    t0 = time.perf_counter()
    labels_tree = model.predict(data.X)
    predict_ms = (time.perf_counter() - t0) * 1000 / max(len(data.X), 1) * 1000
    k_row = model.k_table_.set_index("k").loc[model.k_]
    rows = [{"model": f"K-Means (k={model.k_})", "silhouette": float(k_row["silhouette"]),
             "davies_bouldin": float(k_row["davies_bouldin"]), "fit_s": fit_s,
             "tradeoff": "finds the groups; needs scaled features, not readable on its own"},
            {"model": "decision tree (assigns new customers)", "agreement_with_kmeans": model.tree_agreement_,
             "predict_ms_1k": predict_ms, "tradeoff": "printable rules in real units; approximates K-Means"}]
    notes = [f"k chosen: {model.k_} ({model.k_rule_})"]
    if data.truth is not None and "persona" in data.truth:
        personas = data.truth["persona"].reindex(data.X.index)
        ok = personas.notna().to_numpy()
        rows[0]["ari_vs_personas"] = adjusted_rand_score(personas[ok], labels_km[ok])
        rows[1]["ari_vs_personas"] = adjusted_rand_score(personas[ok], labels_tree[ok])
        rows.append({"model": "oracle (true personas)", "ari_vs_personas": 1.0,
                     "tradeoff": "simulator truth; not available in real life"})
    board = pd.DataFrame(rows)
    sample = data.X.sample(min(len(data.X), EXPLAIN_ROWS), random_state=options.seed)
    background = sample.head(BACKGROUND_ROWS)
    out_dir = settings.home / "reports" / "shap"
    explained = explain_sample(model.tree_, "segment", "segment", background, sample, out_dir, options.seed)
    figures = [*explained.figures, elbow_silhouette_figure(model, out_dir / "segment_elbow_silhouette.png")]
    names = {str(k): v for k, v in model.names_.items()}
    profiles = model.profiles_.reset_index().to_dict("records")
    rules = rules_text(model)
    metrics = {"silhouette": float(k_row["silhouette"]), "davies_bouldin": float(k_row["davies_bouldin"]),
               "tree_agreement": float(model.tree_agreement_), "k": int(model.k_)}
    if "ari_vs_personas" in rows[1]:
        metrics["ari_vs_personas"] = float(rows[1]["ari_vs_personas"])
    extra = {"winner": "decision tree over K-Means", "leaderboard": board.to_dict("records"), "notes": notes,
             "segment_names": names, "profiles": profiles, "k_table": model.k_table_.to_dict("records"),
             "rules": rules}
    version, figures = register(
        store, settings, data, model.tree_, explained=explained, background=background,
        reference=reference_profile(data.X, predictions={"segment": labels_tree.astype(float)}), metrics=metrics,
        extra=extra, fingerprint=registry.training_fingerprint(data.X), promote=options.promote, figures=figures)
    counts = pd.Series(labels_tree).value_counts().sort_index()
    notes.append("segments: " + ", ".join(f"{names.get(str(k), k)} {n / len(labels_tree):.0%}"
                                          for k, n in counts.items()))
    log.info("segment: k=%d registered as %s", model.k_, version)
    return TaskResult("segment", "segment", board, "decision tree over K-Means", version, metrics, notes, figures,
                      None, rules)


def segment_names(manifest: dict) -> dict[int, str]:
    """Segment id -> readable name from a segment model's manifest."""
    return {int(k): v for k, v in (manifest.get("extra", {}).get("segment_names") or {}).items()}

