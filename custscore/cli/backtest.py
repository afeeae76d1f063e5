"""``custscore backtest``: the out-of-time check of the churn model (core: :mod:`custscore.models.backtest`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from custscore.cli.common import TaskBars, app, console, opened_store, progress_bar, user_errors
from custscore.clock import parse_date
from custscore.config import Settings

COLUMNS = {"model": "model", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier",
           "brier_vs_base": "Brier / base rate", "lift_top_decile": "top-decile lift"}
DIGITS = {"brier_vs_base": 3, "lift_top_decile": 2}


@app.command()
def backtest(
    ctx: typer.Context,
    train_cutoff: Annotated[str | None, typer.Option(
        "--train-cutoff", help="T1: train on features up to this date, labels in (T1, T1+H]. Default: last event "
                               "minus 2H (or --as-of minus H).")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="T2 >= T1+H: score every buyer as of this date (events up to it only), compare with "
                        "(T2, T2+H]. Default: last event minus H.")] = None,
    horizon: Annotated[int, typer.Option("--horizon", help="H: days without a purchase that count as churn.")] = 90,
    cv: Annotated[int, typer.Option("--cv", help="K for K-fold cross-validation while training.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for splits and models.")] = 0,
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated families to try (default: all), "
                                                                 "e.g. linear,gboost,xgboost,bgnbd.")] = None,
) -> None:
    """Out-of-time backtest: train at T1, score as of T2, compare with what happened after T2.

    Rows: the winner, BG/NBD and the days-since-last-purchase heuristic, on the same customers, against the base
    rate. Nothing is registered.

    Example: custscore backtest --train-cutoff 2026-03-01 --as-of 2026-06-01 --horizon 90
    """
    from custscore.models.backtest import run_backtest
    from custscore.models.train import TrainOptions

    settings: Settings = ctx.obj
    with user_errors():
        t1 = parse_date(train_cutoff, "--train-cutoff")
        t2 = parse_date(as_of, "--as-of")
        options = TrainOptions(tasks=("churn",), cv=cv, seed=seed,
                               families=tuple(m.strip() for m in models.split(",")) if models else None)
        options.validate()
    with user_errors(), opened_store(ctx) as store, progress_bar() as bar:
        progress = TaskBars(bar)

        result = run_backtest(store, settings, t1, t2, horizon, options, progress)
        progress.finish()
    render_backtest(result)


def render_backtest(result: Any) -> None:
    """The out-of-time table, then what it was computed on."""
    table = Table(title=f"out-of-time backtest: trained {result.train_cutoff:%Y-%m-%d}, scored as of "
                        f"{result.as_of:%Y-%m-%d}, outcomes in the next {result.horizon_days} days")
    for col, header in COLUMNS.items():
        table.add_column(header, justify="left" if col == "model" else "right", no_wrap=col == "model")
    for row in result.table.to_dict("records"):
        style = "bold green" if row["model"].startswith("winner") else ("dim" if "base rate" in row["model"] else None)
        table.add_row(*(row["model"] if c == "model" else f"{row[c]:.{DIGITS.get(c, 4)}f}" for c in COLUMNS),
                      style=style)
    console.print(table)
    console.print(f"  {result.customers:,} customers who had bought by {result.as_of:%Y-%m-%d}; "
                  f"{result.churn_rate:.1%} made no purchase in the next {result.horizon_days} days", highlight=False)
    for note in result.notes[:-1]:  # the last one is the line printed above
        console.print(f"  - {note}", highlight=False)
    if result.figure:
        console.print(f"  figure: {result.figure}", highlight=False)
