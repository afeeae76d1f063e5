"""The demo command: the whole system end to end on the embedded store."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.rule import Rule

from custscore.cli.common import TaskBars, app, console, opened_store, progress_bar, render_frame, user_errors
from custscore.config import Settings


class RichDemoUI:
    """Draws each demo step with rich; ``prefix`` is what the try-next commands start with."""

    def __init__(self, prefix: str = "custscore") -> None:
        self._last_worker = 0.0
        self._bar: Any = None
        self._bars: TaskBars | None = None
        self.prefix = prefix

    def progress(self, what: str, done: int, total: int) -> None:
        if self._bars is None:
            self._bar = progress_bar()
            self._bar.start()
            self._bars = TaskBars(self._bar)
        self._bars(what, done, total)

    def end_progress(self) -> None:
        if self._bars is not None:
            self._bars.finish()
            self._bar.stop()
            self._bar = self._bars = None

    def section(self, title: str) -> None:
        self.end_progress()
        console.print(Rule(f"[bold]{title}"))

    def frame(self, frame: Any, title: str) -> None:
        self.end_progress()
        render_frame(frame, "table", title=title)

    def training(self, results: list) -> None:
        self.end_progress()
        self._training(results)

    def try_next(self, customer_id: str | None) -> None:
        self.end_progress()
        console.print(Rule("[bold]try next"))
        for line in try_next_lines(self.prefix, customer_id):
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    def _training(self, results: list) -> None:
        from custscore.cli.forecast import render_demand_leaderboard
        from custscore.cli.modelling import render_leaderboard
        from custscore.cli.recommend import render_recommend_leaderboard

        renderers = {"ranking": render_recommend_leaderboard, "forecast": render_demand_leaderboard}
        for result in results:
            renderers.get(result.kind, render_leaderboard)(result)

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
        self.end_progress()
        console.print(text, highlight=False, soft_wrap=True)


def command_prefix(ctx: typer.Context) -> str:
    """``custscore`` plus the global options this run was given, so that pasted commands use the same store."""
    params = ctx.parent.params if ctx.parent is not None else {}
    parts = ["custscore"]
    for option, key in (("--mongo-uri", "mongo_uri"), ("--home", "home"), ("--db", "db")):
        if params.get(key) is not None:
            parts += [option, shlex.quote(str(params[key]))]
    return " ".join(parts)


def try_next_lines(prefix: str, customer_id: str | None) -> list[str]:
    """Commands to paste after the demo: real ids, one command per line, a hint when custscore is not on PATH."""
    lines = []
    if shutil.which("custscore") is None:
        bin_dir = Path(sys.executable).parent
        shown = os.path.relpath(bin_dir) if bin_dir.is_relative_to(Path.cwd()) else str(bin_dir)
        lines += [f"custscore is not on PATH; activate its virtual environment first (or run {shown}/custscore):",
                  f"  source {shlex.quote(shown)}/activate"]
    commands = [f"{prefix} query '{{\"score.risk\": \"high\"}}' --sort score.churn_probability:-1 --limit 10"]
    if customer_id is not None:
        commands += [f"{prefix} explain {shlex.quote(customer_id)}",
                     f"{prefix} recommend {shlex.quote(customer_id)} --n 5"]
    commands += [f"{prefix} predict --age 34 --income 52000 --region north --channel web --tickets 2",
                 f"{prefix} models", f"{prefix} leaderboard --task churn", f"{prefix} monitor",
                 f"{prefix} stats rfm --sort monetary:-1",
                 f'{prefix} sql "SELECT region, count(*) AS customers FROM customers GROUP BY region"',
                 f"{prefix} score --watch"]
    lines += [f"  {c}" for c in commands]
    lines += ["and in a second terminal, while score --watch runs:",
              f"  {prefix} simulate --customers 0 --stream --rate 20 --duration 60"]
    return lines


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
    ui = RichDemoUI(command_prefix(ctx))
    with user_errors(), opened_store(ctx) as store:
        try:
            run_demo(store, settings, DemoOptions(customers, seed, stream_seconds, rate, cv), ui)
        finally:
            ui.end_progress()
