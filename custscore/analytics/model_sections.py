"""The report's model sections: one per production model of a customer task (churn, first_purchase,
satisfaction, segment, a user's own target), read through the registry's public functions.

Each holds the stored leaderboard with the winner marked, the training notes, the figures training
filed beside the version (embedded, titled in words) or drawn from the manifest when they are not on
this machine, the classifier's curves, and the drift of recent scores against the training reference,
computed by the same function as ``custscore monitor``.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd

from custscore.analytics import model_figures
from custscore.analytics.page import SCORE_HINT, TRAIN_HINT, WINNER, Figures, Section, heading, paragraph, table
from custscore.config import Settings
from custscore.errors import CustscoreError
from custscore.models.registry import figure_files, is_winner
from custscore.store.base import Store

log = logging.getLogger(__name__)

# the readable columns of each kind's leaderboard, in order (the registry keeps every column)
BOARD_COLUMNS = {
    "classification": ["model", "val_roc_auc", "test_roc_auc", "val_pr_auc", "test_f1", "test_brier", "test_ece",
                       "cv_mean", "cv_std", "fit_s"],
    "regression": ["model", "val_mae", "test_mae", "val_rmse", "test_r2", "cv_mean", "cv_std", "fit_s"],
    "segment": ["model", "silhouette", "davies_bouldin", "ari_vs_personas", "agreement_with_kmeans", "fit_s"],
    "ranking": ["model", "val_ndcg@10", "test_ndcg@10", "test_precision@10", "test_recall@10", "test_map@10",
                "test_hit_rate@10", "test_coverage", "test_mean_popularity", "fit_s"],
}
HEADERS = {"val_roc_auc": "val ROC-AUC", "test_roc_auc": "test ROC-AUC", "val_pr_auc": "val PR-AUC",
           "test_f1": "test F1", "test_brier": "test Brier", "test_ece": "test ECE", "cv_mean": "CV mean",
           "cv_std": "CV std", "fit_s": "fit s", "val_mae": "val MAE", "test_mae": "test MAE", "val_rmse": "val RMSE",
           "test_r2": "test R²", "davies_bouldin": "Davies-Bouldin", "ari_vs_personas": "ARI vs personas",
           "agreement_with_kmeans": "agrees with K-Means", "val_ndcg@10": "val NDCG@10", "test_ndcg@10": "NDCG@10",
           "test_precision@10": "P@10", "test_recall@10": "R@10", "test_map@10": "MAP@10",
           "test_hit_rate@10": "hit rate@10", "test_coverage": "coverage", "test_mean_popularity": "mean popularity"}
# training's figure file endings -> their title in words
FIGURE_TITLES = (("_shap_beeswarm", "SHAP summary for {task}: each customer's contribution per feature"),
                 ("_shap_importance", "SHAP importance for {task}: mean |SHAP value| per feature"),
                 ("_reliability", "Reliability curve for {task}, before and after calibration (test split)"),
                 ("_elbow_silhouette", "Elbow and silhouette over the number of segments (k)"))
DRIFT_COLUMNS = ["name", "kind", "psi", "band", "bucket", "ref_share", "now_share", "noise_floor"]


def figure_title(path: Path, task: str) -> str:
    """A training figure's title in words (``churn_shap_beeswarm.png`` -> "SHAP summary for churn: ...")."""
    for ending, title in FIGURE_TITLES:
        if Path(path).stem.endswith(ending):
            return title.format(task=task)
    return f"{Path(path).stem.replace('_', ' ')} ({task})"


def leaderboard(record: dict) -> tuple[pd.DataFrame, pd.Series]:
    """The stored leaderboard in readable columns, the winner's model cell marked; and which row that is."""
    extra = record.get("extra") or {}
    board = pd.DataFrame(extra.get("leaderboard") or [])
    if board.empty:
        return board, pd.Series(dtype=bool)
    cols = [c for c in BOARD_COLUMNS.get(record.get("kind", ""), ["model"]) if c in board.columns]
    marked = board["model"].astype(str).map(lambda m: is_winner(m, extra.get("winner"))).reset_index(drop=True)
    shown = board[cols].reset_index(drop=True).copy()
    shown["model"] = [f"{m} {WINNER}" if w else str(m) for m, w in zip(shown["model"], marked, strict=True)]
    return shown.rename(columns=HEADERS), marked


def notes_list(extra: dict) -> str:
    """The training notes of a manifest as an HTML list."""
    notes = [n for n in extra.get("notes") or [] if isinstance(n, str)]
    return ("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>") if notes else ""


def drift(store: Store, record: dict) -> list[str]:
    """PSI per feature of recent scores against the version's training reference (``custscore monitor``'s numbers)."""
    from custscore.models.drift_report import drift_report  # the function monitor runs per task

    task = record.get("task")
    reference = (record.get("extra") or {}).get("reference")
    parts = [heading(f"Drift of {task}'s inputs and predictions since training")]
    if not reference:
        return [*parts, paragraph(f"No drift reference stored with {task} {record.get('version')}; {TRAIN_HINT} "
                                  "again to store one.", "note")]
    try:
        frame = drift_report(store, reference)
    except CustscoreError as exc:  # too few scored customers of the reference's population
        return [*parts, paragraph(f"No drift table yet: {exc} ({SCORE_HINT} fills it).", "note")]
    parts.append(paragraph(f"Population stability index (PSI) of the {frame.attrs.get('n_recent', len(frame)):,} most "
                           "recently scored customers against the training reference, worst first: below 0.1 stable, "
                           "below 0.25 moderate, above that a shift; a PSI under its noise floor (what sampling alone "
                           "gives) counts as stable. custscore monitor prints the same numbers."))
    return [*parts, table(frame[[c for c in DRIFT_COLUMNS if c in frame.columns]], max_rows=60,
                          marked=(frame["band"] == "shift").reset_index(drop=True))]


def _figures(settings: Settings | None, record: dict, figs: Figures) -> list[str]:
    """Training's own figures embedded where they exist here; otherwise drawn again from the manifest."""
    task, version, extra = record["task"], record["version"], record.get("extra") or {}
    try:
        files = figure_files(settings, record) if settings is not None else []
    except CustscoreError as exc:
        log.warning("report: figures of %s %s not read: %s", task, version, exc)
        files = []
    parts, stems = [], [f.stem for f in files]
    for path in files:
        parts.append(figs.embed(path, f"{task}_{path.stem.removeprefix(f'{task}_')}", figure_title(path, task)))
    importance = extra.get("shap_importance")
    if not any(s.endswith("_shap_importance") for s in stems) and isinstance(importance, dict) and importance:
        title = FIGURE_TITLES[1][1].format(task=task)
        fig = figs.lib.importance_bars(pd.Series(importance, dtype=float), title)
        parts += [heading(title), figs.img(f"{task}_shap_importance", fig, title)]
    curves = extra.get("curves")
    if isinstance(curves, dict) and curves.get("roc"):
        for name, title, draw in (
                ("roc_pr", f"ROC and precision-recall curves for {task}", model_figures.roc_pr),
                ("confusion", f"Confusion matrix for {task} at the chosen threshold",
                 lambda c, t: model_figures.confusion(c["confusion"], t)),
                ("gains", f"Cumulative gains and lift for {task}", lambda c, t: model_figures.gains_lift(c["gains"], t))):
            parts += [heading(title), figs.img(f"{task}_{name}", draw(curves, task), title)]
    elif record.get("kind") == "classification":
        parts.append(paragraph(f"No ROC, precision-recall, confusion or gains data stored with {task} {version} "
                               f"(trained before the report drew them); {TRAIN_HINT} --task {task} to add them.", "note"))
    rows = extra.get("reliability")
    if not any(s.endswith("_reliability") for s in stems) and isinstance(rows, list) and rows:
        title = f"Reliability curve for {task} (test split)"
        parts += [heading(title), figs.img(f"{task}_reliability", model_figures.reliability(rows, task), title)]
    return parts


def board_caption(task: str, kind: str | None) -> str:
    """What a leaderboard shows; a clustering board has no test split, so it claims none."""
    if kind == "segment":
        return (f"{task} leaderboard (clustering: silhouette higher is better, Davies-Bouldin lower is better; "
                "the decision tree assigns new customers)")
    return f"{task} leaderboard (the winner is picked on validation data; test is reported once)"


def task_section(store: Store, settings: Settings | None, record: dict, figs: Figures) -> Section:
    """One production model: leaderboard, notes, figures and drift."""
    task, version, extra = record["task"], record["version"], record.get("extra") or {}
    s = Section(f"model-{task}", f"Model: {task}")
    s.add(paragraph(f"Production version {version} ({record.get('kind')}), winner {extra.get('winner') or '-'}, "
                    f"trained as of {str(extra.get('as_of') or '-')[:10]}."))
    board, marked = leaderboard(record)
    if board.empty:
        s.add(paragraph(f"No leaderboard stored with {task} {version}.", "note"))
    else:
        s.add(heading(board_caption(task, record.get("kind"))) + table(board, marked=marked))
    s.add(notes_list(extra))
    s.parts += _figures(settings, record, figs)
    s.parts += drift(store, record)
    return s


def task_sections(store: Store, settings: Settings | None, records: list[dict], figs: Figures) -> list[Section]:
    """A section per production customer model (not the recommender), or one empty section saying what fills it."""
    chosen = [r for r in records if r.get("kind") != "ranking"]
    if not chosen:
        return [Section("models", "Models").empty(f"No models registered yet: {TRAIN_HINT} to fill this section.")]
    return [task_section(store, settings, r, figs) for r in chosen]
