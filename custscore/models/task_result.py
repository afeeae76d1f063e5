"""What training one task produces, and the tail every task shares: explain a sample, register, file the figures.

Supervised tasks (:mod:`custscore.models.train`) and the segment task (:mod:`custscore.models.segment_task`)
end the same way: SHAP on a sample against a background, the manifest's shared keys (importance, units,
background, drift reference, as-of, categories), :func:`~custscore.models.registry.save_model`, the figures moved
next to the registered version, a :class:`TaskResult`. It lives here, below both, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from custscore.config import Settings
from custscore.models import explain, feature_catalogue, registry
from custscore.models.shap_figures import save_shap_figures
from custscore.store.base import Store

BACKGROUND_ROWS = 100
EXPLAIN_ROWS = 2000


@dataclass
class TaskResult:
    """One task's outcome: the leaderboard, the chosen model and where it went."""

    task: str
    kind: str
    leaderboard: pd.DataFrame
    winner: str
    version: str | None
    test_metrics: dict
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    threshold: float | None = None
    rules: str | None = None


@dataclass
class Explained:
    """SHAP on a sample: global importance, the figure files written, and the explainer's units."""

    importance: pd.Series
    figures: list[Path]
    units: str


def explain_sample(pipeline: Any, kind: str, task: str, background: pd.DataFrame, sample: pd.DataFrame,
                   out_dir: Path, seed: int) -> Explained:
    """Explain ``sample`` against ``background`` and draw the SHAP figures for ``task`` into ``out_dir``."""
    explainer = explain.make_explainer(pipeline, background, kind, seed=seed)
    explanation = explainer.explain(sample)
    figures = save_shap_figures(explanation, sample, out_dir, task)
    return Explained(explain.global_importance(explanation), figures, explainer.units)


def register(store: Store, settings: Settings, data: Any, model: Any, *, explained: Explained,
             background: pd.DataFrame, reference: dict, metrics: dict, extra: dict, fingerprint: str,
             promote: bool, threshold: float | None = None, figures: list[Path] | None = None) -> tuple[str, list[Path]]:
    """Save ``model`` for ``data.task`` with the manifest keys every task shares; returns (version, filed figures).

    Parameters
    ----------
    data : TaskData
        The task's data (task, kind, X, as_of, categories).
    explained : Explained
        From :func:`explain_sample`.
    background : DataFrame
        The SHAP background rows, kept in the manifest so scoring explains against the same rows.
    reference : dict
        The drift reference (:func:`custscore.models.drift.reference_profile`).
    extra : dict
        The task's own manifest keys (leaderboard, notes, ...).
    figures : list of Path, optional
        All figures to file next to the version; default the SHAP figures.
    """
    manifest_extra = {**extra, "shap_importance": explained.importance.round(6).to_dict(),
                      "shap_units": explained.units, "background": background.reset_index().to_dict("records"),
                      "reference": reference, "as_of": data.as_of.isoformat(), "categories": data.categories}
    version = registry.save_model(
        store, settings, data.task, model, kind=data.kind, features=feature_catalogue.feature_schema(list(data.X.columns)),
        metrics=metrics, threshold=threshold, training_fingerprint=fingerprint, extra=manifest_extra,
        promote=promote)
    return version, file_figures(settings, data.task, version, explained.figures if figures is None else figures)


def file_figures(settings: Settings, task: str, version: str, figures: list[Path]) -> list[Path]:
    """Move the figures next to the registered version (the report looks for them there)."""
    target = settings.home / "models" / task / version / "figures"
    target.mkdir(parents=True, exist_ok=True)
    moved = []
    for fig in figures:
        dest = target / Path(fig).name
        Path(fig).replace(dest)
        moved.append(dest)
    return moved
