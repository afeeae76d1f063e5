"""The demo command: the whole system end to end on the embedded store."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.rule import Rule

from custscore.cli.common import app, console, opened_store, render_frame, user_errors
from custscore.config import Settings


class RichDemoUI:
    """Draws each demo step with rich."""

    def __init__(self) -> None:
        self._last_worker = 0.0

    def section(self, title: str) -> None:
        console.print(Rule(f"[bold]{title}"))

    def frame(self, frame: Any, title: str) -> None:
        render_frame(frame, "table", title=title)

    def training(self, results: list) -> None:
        from custscore.cli.modelling import render_leaderboard
        from custscore.cli.recommend import render_recommend_leaderboard

        for result in results:
            (render_recommend_leaderboard if result.kind == "ranking" else render_leaderboard)(result)

    def worker(self, stats: Any) -> None:
        import time

        from custscore.cli.scoring import stats_panel

        now = time.monotonic()
        if now - self._last_worker >= 10 or stats.caught_up and stats.last_batch_at and now - self._last_worker > 3:
            console.print(stats_panel(stats))
            self._last_worker = now

    def scored(self, docs: list[dict], title: str) -> None:
        from custscore.cli.scoring import print_scored

        console.print(f"[bold]{title}[/]")
        print_scored(docs)

    def monitor(self, result: Any) -> None:
        if result.frame.empty:
            console.print(result.message)
            return
        render_frame(result.frame.head(10)[[c for c in ("task", "kind", "name", "psi", "band")
                                              if c in result.frame.columns]], "table",
                      title=f"drift (worst 10 of {len(result.frame)}), {result.n_recent:,} recent customers",
                      note=f"worst band: {result.worst_band}. {result.message}")

    def message(self, text: str) -> None:
        console.print(text, highlight=False)


@app.command()
def demo(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option("--customers", help="Customers to simulate.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    stream_seconds: Annotated[float, typer.Option("--stream-seconds", help="How long new customers arrive.")] = 30.0,
    rate: Annotated[float, typer.Option("--rate", help="New customers per second during the stream.")] = 5.0,
    cv: Annotated[int, typer.Option("--cv", help="K-fold CV while training.")] = 5,
) -> None:
    """Run everything: simulate, statistics, mirror, train, live scoring of a stream, query, monitor, report.

    It RESETS the store it runs on (the embedded default under --home). Example: custscore demo --customers 5000
    """
    from custscore.demo import DemoOptions, run_demo

    settings: Settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        run_demo(store, settings, DemoOptions(customers, seed, stream_seconds, rate, cv), RichDemoUI())
    console.print(Rule("[bold]try next"))
    for line in ("custscore query '{\"score.risk\": \"high\"}' --sort score.churn_probability:-1",
                 "custscore explain <CUSTOMER_ID>", "custscore models", "custscore monitor",
                 "custscore score --watch   (and in another terminal: custscore simulate --customers 0 --stream --rate 20 --duration 60)",
                 "custscore sql \"SELECT region, COUNT(*) FROM customers GROUP BY region\""):
        console.print(f"  {line}", highlight=False)
