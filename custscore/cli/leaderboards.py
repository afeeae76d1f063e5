"""Leaderboards and the registry as tables that are never cut: `leaderboard`, `models`, `models show`.

A table gets the columns that fit the terminal, in order of importance (the
rest with ``--wide``), the winner is marked in the model column, and numbers
have one style: thousands separators on counts, three decimals on metrics,
whole KB on sizes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from custscore.cli.common import (
    CsvOpt,
    app,
    console,
    fitted_table,
    fmt,
    frame_csv,
    models_app,
    opened_store,
    print_fitted,
    user_errors,
)

WINNER = " (winner)"
COUNTS = {"k", "n", "rows", "customers"}
SECONDS = {"fit_s", "predict_ms_1k", "recommend_ms_1k"}
KB = {"size_kb"}
LOWER_IS_BETTER = {"regression": "MAE, lower is better", "classification": "ROC-AUC, higher is better"}
METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "mae": "MAE", "rmse": "RMSE", "r2": "R²",
                "silhouette": "silhouette (all data)", "ndcg@10": "NDCG@10"}
LEADERBOARD_COLUMNS = {
    "regression": ["model", "cv_mean", "cv_std", "val_mae", "test_mae", "test_r2", "fit_s", "predict_ms_1k", "size_kb"],
    "classification": ["model", "cv_mean", "cv_std", "val_roc_auc", "test_roc_auc", "val_pr_auc", "test_f1",
                       "test_brier_raw", "test_brier", "test_ece_raw", "test_ece", "fit_s", "predict_ms_1k", "size_kb"],
    "segment": ["model", "silhouette", "davies_bouldin", "ari_vs_personas", "agreement_with_kmeans", "fit_s",
                "predict_ms_1k"],
    "ranking": ["model", "val_ndcg@10", "cv_std", "test_precision@10", "test_recall@10", "test_ndcg@10",
                "test_map@10", "test_hit_rate@10", "test_coverage", "test_mean_popularity", "fit_s", "recommend_ms_1k"],
}
HEADERS = {"cv_mean": "CV mean", "cv_std": "CV std", "val_mae": "val MAE", "test_mae": "test MAE",
           "test_r2": "test R²", "val_roc_auc": "val AUC", "test_roc_auc": "test AUC", "val_pr_auc": "val PR-AUC",
           "test_f1": "test F1", "test_brier": "Brier (cal.)", "test_brier_raw": "Brier (raw)",
           "test_ece_raw": "ECE (raw)", "test_ece": "ECE (cal.)", "fit_s": "fit s", "predict_ms_1k": "ms/1k rows",
           "size_kb": "size KB", "davies_bouldin": "Davies-Bouldin", "ari_vs_personas": "ARI vs personas",
           "agreement_with_kmeans": "agrees w/ K-Means", "val_ndcg@10": "val NDCG@10", "test_precision@10": "precision@10",
           "test_recall@10": "recall@10", "test_ndcg@10": "test NDCG@10", "test_map@10": "MAP@10",
           "test_hit_rate@10": "hit rate@10", "test_coverage": "coverage", "test_mean_popularity": "mean popularity",
           "recommend_ms_1k": "ms/1k customers"}


def number(column: str, value: Any) -> str:
    """One number style: counts with thousands separators, whole KB, timings to 3 figures, metrics to 3 decimals."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if column in COUNTS or column in KB:
        return f"{value:,.0f}"
    if column in SECONDS:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3f}"


def board_title(task: str, kind: str) -> str:
    """What the table shows; a clustering board makes no claim about CV or a test split."""
    if kind == "segment":
        return (f"{task} leaderboard (clustering: silhouette higher is better, Davies-Bouldin lower is better; "
                "the decision tree assigns new customers)")
    if kind == "ranking":
        return (f"{task} leaderboard (NDCG@10 etc. on each customer's last 20% of purchases; the winner is picked on "
                "validation customers, test customers are reported)")
    metric = LOWER_IS_BETTER.get(kind, "primary metric")
    return (f"{task} leaderboard ({metric}; CV = K-fold mean and std; the winner is picked on validation, "
            "test is reported once)")


def board_cells(board: pd.DataFrame, kind: str, winner: str | None) -> tuple[list[str], list[list[str]]]:
    """Columns (in order of importance) and formatted cells of a leaderboard; the winner's model cell marked."""
    from custscore.models.registry import is_winner

    known = LEADERBOARD_COLUMNS.get(kind, ["model"])
    cols = [c for c in known if c in board.columns] + [
        c for c in board.columns if c not in known and c not in ("tradeoff", "calibration")
        and pd.api.types.is_numeric_dtype(board[c])]
    rows = []
    for row in board.to_dict("records"):
        cells = [number(c, row.get(c)) for c in cols]
        if "model" in cols and winner is not None and is_winner(str(row.get("model")), winner):
            cells[cols.index("model")] += WINNER
        rows.append(cells)
    return cols, rows


def leaderboard_table(board: pd.DataFrame, task: str, kind: str, winner: str | None, wide: bool = False,
                      width: int | None = None) -> tuple[Table, list[str]]:
    """A leaderboard as a rich table whose cells are never cut, and the columns left out (shown with ``--wide``)."""
    cols, rows = board_cells(board, kind, winner)
    headers = [HEADERS.get(c, c) for c in cols]
    styles = ["bold green" if cells[0].endswith(WINNER) else None for cells in rows]
    return fitted_table(board_title(task, kind), headers, rows, right=set(headers) - {"model"}, wide=wide,
                        width=width, styles=styles)


def print_leaderboard(board: pd.DataFrame, task: str, kind: str, winner: str | None, wide: bool = False) -> None:
    """Print a leaderboard table and, when columns were left out, which ones and how to see them."""
    print_fitted(*leaderboard_table(board, task, kind, winner, wide), wide=wide)


@app.command()
def leaderboard(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option("--task", help="Only this task (default: every production model).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="This version (a prefix or latest) instead "
                                                                   "of production; needs --task.")] = None,
    csv: CsvOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, even past the terminal's width.")] = False,
) -> None:
    """Reprint the stored leaderboard of a trained model, the winner marked.

    Example: custscore leaderboard --task churn   (or: custscore leaderboard --task churn --version latest --csv)
    """
    from custscore.models.registry import PRODUCTION, is_winner, list_models, resolve_version

    with user_errors(), opened_store(ctx) as store:
        if version is not None and task is None:
            raise typer.BadParameter("--version needs --task", param_hint="--version")
        rows = list_models(store, task)
        if version is not None:
            version = resolve_version(store, task, version)
        chosen = [r for r in rows if (r["version"] == version if version else PRODUCTION in r["aliases"])]
        docs = [store["models"].find_one({"_id": f"{r['task']}:{r['version']}"}) for r in chosen]
    if not docs:
        console.print("no trained model to show; train some with: custscore train --task all")
        return
    for doc in docs:
        extra = doc.get("extra") or {}
        board = pd.DataFrame(extra.get("leaderboard") or [])
        if board.empty:
            console.print(f"{doc['task']} {doc['version']}: no leaderboard stored")
            continue
        if csv:
            out = board.drop(columns=[c for c in ("calibration",) if c in board.columns])
            out.insert(0, "task", doc["task"])
            out["winner"] = [is_winner(str(m), str(extra.get("winner"))) for m in out["model"]]
            console.print(frame_csv(out), end="", markup=False, highlight=False, soft_wrap=True)
            continue
        print_leaderboard(board, doc["task"], doc.get("kind", ""), extra.get("winner"), wide)
        console.print(f"  {doc['task']} {doc['version']}" + (" (production)" if PRODUCTION in doc.get("aliases", [])
                                                              else ""), highlight=False)


def render_models(rows: list[dict], wide: bool = False) -> None:
    """The registry as a table: full versions, the family, the primary metric on validation and test."""
    headers = ["task", "version", "family", "prod", "metric", "val", "test", "threshold", "size"]
    cells = []
    for r in rows:
        metric = r.get("primary_metric")
        cells.append([r["task"], r["version"], str(r.get("family") or "-"),
                      "yes" if "production" in (r.get("aliases") or []) else "",
                      METRIC_NAMES.get(metric, metric or "-"), number("metric", r.get("val")),
                      number("metric", r.get("test")), number("metric", r.get("threshold")),
                      f"{(r.get('artifact_bytes') or 0) / 1024:,.0f} KB"])
    table, hidden = fitted_table("model registry (newest first)", headers, cells,
                                 right={"val", "test", "threshold", "size"}, wide=wide)
    print_fitted(table, hidden, wide=wide)
    console.print("details: custscore models show VERSION (a prefix or latest works)", highlight=False)


@models_app.command("show")
def show(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A version, an unambiguous prefix of one, or latest.")],
    task: Annotated[str | None, typer.Option("--task", help="Look only in this task.")] = None,
) -> None:
    """One registered model in readable form: leaderboard, threshold, metrics, features, hashes, figures.

    Example: custscore models show 20261202-0135   (or: custscore models show latest --task churn)
    """
    from custscore.models.transfer import find_record

    settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        doc = find_record(store, version, task)
    extra = doc.get("extra") or {}
    facts = [("task", doc["task"]), ("version", doc["version"]), ("kind", doc.get("kind")),
             ("family", extra.get("winner")), ("aliases", ", ".join(doc.get("aliases") or []) or "-"),
             ("created", fmt(_when(doc.get("created_at")))), ("trained as of", fmt(_when(extra.get("as_of"))) if extra.get("as_of") else None),
             ("threshold", number("metric", doc.get("threshold")))]
    head = Table(title=f"{doc['task']} {doc['version']}", show_header=False)
    head.add_column("", style="bold")
    head.add_column("", no_wrap=True)
    for k, v in facts:
        head.add_row(k, "-" if v is None else str(v))
    console.print(head)
    metrics = doc.get("metrics") or {}
    if metrics:
        mt = Table(title="metrics")
        mt.add_column("metric")
        mt.add_column("value", justify="right")
        for k, v in metrics.items():
            mt.add_row(k, number("metric", v))
        console.print(mt)
    board = pd.DataFrame(extra.get("leaderboard") or [])
    if not board.empty:
        print_leaderboard(board, doc["task"], doc.get("kind", ""), extra.get("winner"))
    names = [f.get("name") for f in doc.get("features") or []]
    console.print(f"features ({len(names)}): " + ", ".join(map(str, names)), highlight=False)
    at = Table(title="artifacts")
    for c in ("file", "bytes", "sha256"):
        at.add_column(c, justify="right" if c == "bytes" else "left", no_wrap=True)
    for a in doc.get("artifacts") or []:
        at.add_row(a.get("file", ""), f"{a.get('bytes', 0):,}", a.get("sha256", ""))
    console.print(at)
    console.print(f"manifest sha256: {doc.get('manifest_sha256', '-')}", highlight=False)
    figures = sorted((Path(settings.home) / "models" / doc["task"] / doc["version"] / "figures").glob("*.png"))
    for path in figures:
        console.print(f"figure: {path}", highlight=False)


def _when(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value
