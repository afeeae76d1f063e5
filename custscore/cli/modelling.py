"""Model commands: train, models, promote, predict, explain."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from custscore.cli.common import (
    AsOfOpt,
    TaskBars,
    app,
    command_clock,
    console,
    err_console,
    fail,
    models_app,
    opened_store,
    print_score,
    print_tradeoffs_and_notes,
    progress_bar,
    user_errors,
    versions_text,
    warn_if_stale,
    write_rows,
)
from custscore.clock import parse_date
from custscore.config import Settings
from custscore.errors import CustscoreError

TASK_CHOICES = ("satisfaction", "churn", "segment", "recommend", "demand", "all")
def render_leaderboard(result: Any) -> None:
    """One task's leaderboard as a rich table, then its trade-offs and notes."""
    from custscore.cli.leaderboards import print_leaderboard

    board = result.leaderboard
    print_leaderboard(board, result.task, result.kind, result.winner)
    print_tradeoffs_and_notes(board, result.notes)
    if result.version:
        console.print(f"  winner [bold green]{result.winner}[/] registered as {result.task} {result.version}"
                      + (f", threshold {result.threshold:.3f}" if result.threshold is not None else ""))
    for fig in result.figures:
        console.print(f"  figure: {fig}", highlight=False)


def _parse_date(value: str | None, option: str) -> dt.datetime | None:
    with user_errors():  # clock.parse_date is the one date parser; its ConfigError becomes the red line
        return parse_date(value, option)


@app.command()
def train(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", help="satisfaction, churn, segment, recommend, demand or all.")] = "all",
    target: Annotated[str | None, typer.Option("--target", help="Train on your own labelled customer field instead.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="With --target: regression or classification "
                                                             "(default: inferred from the field).")] = None,
    cv: Annotated[int, typer.Option("--cv", help="K for K-fold cross-validation.")] = 5,
    tune: Annotated[bool, typer.Option("--tune", help="Tune the leading family (grid/random search, KerasTuner).")] = False,
    tune_budget: Annotated[float, typer.Option("--tune-budget", help="Seconds of tuning per task.")] = 120.0,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="Churn: features up to this date (default: last "
                                                                 "event minus the horizon).")] = None,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Churn: days after the cutoff without a purchase "
                                                                   "(default 90). Demand: periods to forecast "
                                                                   "(default 28 D, 8 W, 3 M).")] = None,
    by: Annotated[str, typer.Option("--by", help="Demand: series per product, category, store, total or a "
                                                 "crossing such as product,store.")] = "category",
    freq: Annotated[str, typer.Option("--freq", help="Demand: D (days), W (weeks) or M (months).")] = "D",
    seed: Annotated[int, typer.Option("--seed", help="Random seed for splits and models.")] = 0,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Register winners without promoting them.")] = False,
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated families to try (default: all): "
                                                                 "linear,tree,forest,gboost,xgboost,mlp,voting,stacking "
                                                                 "(churn also bgnbd); "
                                                                 "demand: seasonal_naive,ets,arima,tsb,sarimax,global_gbm.")] = None,
) -> None:
    """Train and compare every model family per task, explain the winner with SHAP and register it.

    Example: custscore train --task all   (or: custscore train --task churn --cutoff 2026-06-30 --horizon 60)
    """
    from custscore.models.train import TrainOptions
    from custscore.models.train import train as run_train

    if task not in TASK_CHOICES:
        raise fail(f"--task {task!r} is not known; use one of {', '.join(TASK_CHOICES)}")
    settings: Settings = ctx.obj
    options = TrainOptions(tasks=("satisfaction", "churn", "segment") if task == "all" else (task,), target=target,
                           kind=kind, cv=cv, tune=tune, tune_budget_s=tune_budget,
                           cutoff=_parse_date(cutoff, "--cutoff"), horizon_days=90 if horizon is None else horizon, seed=seed,
                           promote=not no_promote,
                           families=tuple(m.strip() for m in models.split(",")) if models else None)
    with user_errors(), opened_store(ctx) as store, progress_bar() as bar:
        progress = TaskBars(bar)

        results = run_train(store, settings, options, progress) if task not in ("recommend", "demand") or target else []
        recommended = None
        if task in ("recommend", "all") and not target:
            from custscore.cli.recommend import train_recommendations

            try:
                recommended = train_recommendations(store, settings, seed=seed, promote=not no_promote,
                                                    progress=progress)
            except CustscoreError as exc:
                if task == "recommend":
                    raise
                err_console.print(f"[yellow]recommendations skipped[/]: {exc}", highlight=False)
        progress.finish()
        example = store["customers"].find_one({}, {"_id": 1})
    for result in results:
        render_leaderboard(result)
    if recommended is not None:
        from custscore.cli.recommend import render_recommend_leaderboard

        render_recommend_leaderboard(recommended)
    if task in ("demand", "all") and not target:
        from custscore.cli.forecast import run_demand

        try:
            run_demand(ctx, by, freq, horizon if task == "demand" else None, families=models if task == "demand" else None)
        except typer.Exit:
            if task == "demand":
                raise
    console.print("next: custscore models | custscore explain "
                  f"{shlex.quote(str(example['_id'])) if example else 'CUSTOMER_ID'} | custscore score --once",
                  highlight=False, soft_wrap=True)


app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models_(ctx: typer.Context, task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
            wide: Annotated[bool, typer.Option("--wide", help="Every column, even past the terminal's width.")] = False,
            ) -> None:
    """List registered models, newest first, with their metrics and the production alias.

    Example: custscore models --task churn   (also: custscore models export VERSION FILE, custscore models import FILE)
    """
    if ctx.invoked_subcommand is not None:
        return
    from custscore.models.registry import list_models

    with user_errors(), opened_store(ctx) as store:
        rows = list_models(store, task)
    if not rows:
        console.print("no models registered yet; train some with: custscore train --task all")
        return
    from custscore.cli.leaderboards import render_models

    render_models(rows, wide)


@app.command()
def promote(ctx: typer.Context, task: Annotated[str, typer.Argument(help="satisfaction, churn, segment, ...")],
            version: Annotated[str, typer.Argument(help="A version from `custscore models` (a prefix or latest).")]
            ) -> None:
    """Make VERSION the production model of TASK (a running scorer switches at its next batch).

    Example: custscore promote churn 20261122-101500-a1b2c3
    """
    from custscore.models.registry import promote as run_promote

    with user_errors(), opened_store(ctx) as store:
        version = run_promote(store, ctx.obj, task, version)
    console.print(f"{task}: production is now {version}")


def _read_documents(path: Path) -> list[dict]:
    from custscore.scorer.inserting import read_documents

    return read_documents(sys.stdin if str(path) == "-" else path)


def _render_scores(scores: list, all_reasons: dict | None = None) -> None:
    for s in scores:
        print_score(s.customer_id, s.score, (all_reasons or {}).get(s.customer_id))


@app.command()
def predict(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="Customers as JSON lines (or a JSON array); '-' for stdin.")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="Their purchase events (JSON lines).")] = None,
    customer_id: Annotated[str, typer.Option("--id", help="Id of a customer given by options.")] = "NEW",
    age: Annotated[int | None, typer.Option("--age")] = None,
    income: Annotated[float | None, typer.Option("--income")] = None,
    region: Annotated[str | None, typer.Option("--region")] = None,
    channel: Annotated[str | None, typer.Option("--channel")] = None,
    tickets: Annotated[int | None, typer.Option("--tickets", help="Support tickets raised.")] = None,
    satisfaction: Annotated[int | None, typer.Option("--satisfaction", help="Survey score 1-10, if known.")] = None,
    signup: Annotated[str | None, typer.Option("--signup", help="Signup date (default: the as-of date).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write one row per customer to this .csv or .jsonl "
                                                           "file instead of printing the scores.")] = None,
    as_of: AsOfOpt = None,
) -> None:
    """Score customers that need not be in the store, with the production models, and show the top reasons per task.

    Example: custscore predict --age 34 --income 52000 --region north --channel web --tickets 2

    Batch: custscore predict new_customers.jsonl --out scores.csv   (or --out scores.jsonl)
    """
    from custscore.scorer.inserting import with_customer_id
    from custscore.scorer.oneoff import score_given, validated_customers
    from custscore.scorer.recommending import load_scoring_models
    from custscore.scorer.score_file import score_file_format, score_records

    with user_errors(), opened_store(ctx) as store:
        kind = score_file_format(out) if out is not None else None  # a bad suffix is refused before any scoring
        clock = command_clock(ctx, as_of)
        now = clock.now()
        if file is not None:  # the id as customer_id or _id, as insert takes it
            docs = [with_customer_id(d) for d in _read_documents(file)]
        else:
            docs = [{"_id": customer_id, "customer_id": customer_id, "age": age, "income": income, "region": region,
                     "channel": channel, "support_tickets": tickets, "customer_satisfaction": satisfaction,
                     "signup_date": _parse_date(signup, "--signup") or now}]
        validated_customers(docs)  # a bad document is refused before any model is loaded
        models = load_scoring_models(store, ctx.obj)
        warn_if_stale(store, clock)
        # the same function as POST /v1/score: validated documents, given + stored events up to the clock
        scores = score_given(store, models, docs, _read_documents(events) if events else (), as_of=now)
    if out is not None and kind is not None:
        write_rows(out, kind, score_records(scores, flat=kind == "csv"))
        console.print(f"wrote {len(scores):,} {'customer' if len(scores) == 1 else 'customers'} to {out} "
                      f"(models {versions_text(models.versions)})", highlight=False, soft_wrap=True)
        return
    _render_scores(scores, {s.customer_id: s.reasons_by_task for s in scores})
    console.print(f"[dim]models: {versions_text(models.versions)}[/]", highlight=False, soft_wrap=True)


@app.command()
def explain(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="A customer id in the store.")],
    top: Annotated[int, typer.Option("--top", help="Contributions to show per task.")] = 5,
    as_of: AsOfOpt = None,
) -> None:
    """Explain one stored customer's predictions: the top SHAP contributions per task in plain words.

    Example: custscore explain C0000042 --top 5
    """
    from custscore.scorer.oneoff import score_stored
    from custscore.scorer.recommending import load_scoring_models
    from custscore.store.schema import CUSTOMERS

    with user_errors(), opened_store(ctx) as store:
        if store[CUSTOMERS].find_one({"_id": customer_id}, projection={"_id": 1}) is None:
            raise fail(f"customer {customer_id!r} is not in the store; check the id with: custscore query "
                        f"'{{\"_id\": \"{customer_id}\"}}'")
        models = load_scoring_models(store, ctx.obj)
        clock = command_clock(ctx, as_of)
        warn_if_stale(store, clock)
        # the same function as POST /v1/explain with {"customer_id": ...}
        scores = score_stored(store, models, [customer_id], as_of=clock.now(), k=top)
    _render_scores(scores, {s.customer_id: s.reasons_by_task for s in scores})
    units = {t: e.units for t, e in models.explainers.items()}
    console.print(f"[dim]contributions are in {', '.join(f'{t}: {u}' for t, u in units.items())}; "
                  f"models: {versions_text(models.versions)}[/]", highlight=False, soft_wrap=True)
