"""Data commands: simulate, ingest, status, mirror, report (stats and sql: cli/stats.py, cli/sql.py)."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from custscore.cli.common import (
    MAX_PROBLEMS_SHOWN,
    AsOfOpt,
    TaskBars,
    app,
    command_clock,
    console,
    err_console,
    fail,
    fmt,
    opened_store,
    progress_bar,
    user_errors,
    wait_for_locks,
    warn_if_stale,
)
from custscore.clock import now as clock_now
from custscore.clock import parse_date
from custscore.config import Settings


def _parse_end(value: str | None) -> dt.datetime | None:
    with user_errors():  # clock.parse_date is the one date parser; its ConfigError becomes the red line
        return parse_date(value, "--end")


@app.command()
def simulate(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option("--customers", "-n", help="How many customers to simulate.")] = 20000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and --end give the same data.")] = 0,
    days: Annotated[int, typer.Option(help="Days of purchase history before --end.")] = 365,
    end: Annotated[str | None, typer.Option(help="Last day of history, YYYY-MM-DD (default: today, UTC).")] = None,
    missing_rate: Annotated[float, typer.Option(help="Share of profile values left missing.")] = 0.02,
    outlier_rate: Annotated[float, typer.Option(help="Share of outlier incomes, ages and amounts.")] = 0.01,
    batch_size: Annotated[int, typer.Option(help="Customers per atomic batch write.")] = 5000,
    reset: Annotated[bool, typer.Option("--reset", help="Empty the store first.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Then keep inserting new customers and purchases.")] = False,
    rate: Annotated[float, typer.Option(help="Stream: new customers per second (purchases: about 3x).")] = 10.0,
    duration: Annotated[float, typer.Option(help="Stream: seconds to run.")] = 30.0,
) -> None:
    """Simulate customers and a year of purchase events with known ground truth.

    Example: custscore simulate --customers 20000 --seed 7 --reset

    Stream only (no batch): custscore simulate --customers 0 --stream --rate 20 --duration 60
    """
    from custscore.simulator.generate import SimulationConfig
    from custscore.simulator.run import run_simulation, run_stream

    if customers < 0:
        raise fail(f"--customers must be >= 0, got {customers}")
    if customers == 0 and not stream:
        raise fail("--customers 0 writes nothing; give a positive count or add --stream")
    with user_errors(), opened_store(ctx) as store:
        if stream:
            wait_for_locks(store)  # a held write lock pauses the stream; it does not stop it
        if customers:
            config = SimulationConfig(
                customers, seed=seed, end=_parse_end(end), days=days,
                missing_rate=missing_rate, outlier_rate=outlier_rate,
            )
            with progress_bar() as progress:
                task = progress.add_task("simulating customers", total=customers)
                summary = run_simulation(
                    store, config, batch_size=batch_size, replace=reset,
                    on_progress=lambda n: progress.advance(task, n),
                )
            console.print(
                f"[green]Stored {summary.customers:,} customers and {summary.events:,} events[/] "
                f"in {summary.seconds:.1f}s ({store.backend}: {store.location})"
            )
        if stream:
            with progress_bar() as progress:
                task = progress.add_task("streaming", total=None)

                def tick(step: Any) -> None:
                    progress.update(task, description=f"streaming (+{step.customers} customers, +{step.events} events)")

                total = run_stream(store, rate=rate, duration=duration, seed=seed, on_tick=tick)
            console.print(f"[green]Streamed {total.customers:,} new customers and {total.events:,} events[/] in {total.seconds:.0f}s")


def _print_report(report: Any, kind: str) -> None:
    console.print(
        f"{kind}: [green]{report.inserted:,} inserted[/], {report.updated:,} updated, "
        f"{report.skipped:,} unchanged or already stored"
    )
    merged = report.merged
    if merged:
        rows = "identical row" if merged == 1 else "identical rows"
        console.print(f"[yellow]{merged:,} {rows} merged[/]; give an event_id column to keep repeat purchases apart",
                      highlight=False)
    if report.problems:
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            err_console.print(f"  [yellow]rejected[/] {problem}", highlight=False)
        more = len(report.problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            err_console.print(f"  ... and {more} more problems")
        raise fail(f"{report.rejected:,} {kind} rejected (nothing of them stored); fix the rows above and ingest again")


@app.command()
def ingest(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="customers or events")],
    file: Annotated[Path, typer.Argument(help="A .csv, .parquet or .jsonl file.")],
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="Rename a column: SOURCE=FIELD (repeatable).")
    ] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strptime format for non-ISO dates, e.g. %d/%m/%Y.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Records per atomic batch write.")] = 5000,
) -> None:
    """Load your own customers or purchase events (CSV, Parquet, JSON lines) through validation.

    Good rows are stored; each bad row is reported with its field and reason (exit code 1).
    Customers already known are updated (their purchase history and scores kept); events
    already stored are skipped, so loading a file twice adds nothing.

    Example: custscore ingest customers crm.csv --map cust_no=customer_id --map joined=signup_date
    """
    from custscore.ingest import check_file, ingest_file, parse_mapping

    if kind not in ("customers", "events"):
        raise fail(f"cannot ingest {kind!r}; choose customers or events")
    with user_errors(), opened_store(ctx) as store:
        mapping = parse_mapping(map_)
        check_file(file)  # a missing file is one red line, not an empty progress bar first
        with progress_bar() as progress:
            task = progress.add_task(f"ingesting {kind}", total=None)
            report = ingest_file(
                store, kind, file, mapping, date_format=date_format, batch_size=batch_size,
                on_progress=lambda n: progress.advance(task, n),
            )
        _print_report(report, kind)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the backend, documents per collection, the events' date range and registered models.

    Example: custscore status
    """
    from custscore.status import store_status

    with user_errors(), opened_store(ctx) as store:
        st = store_status(store)
    # the store on a line of its own: as a title, a long path would wrap over the narrow table
    console.print(f"custscore store ({st.backend}: {st.location})", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("collection")
    table.add_column("documents", justify="right")
    for name, count in st.counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    if st.counts.get("customers"):
        console.print(f"customers with simulated ground truth: {st.simulated_customers:,}")
    if st.first_event is not None:
        console.print(f"events from {fmt(st.first_event)} to {fmt(st.last_event)}")
    if st.models:
        models = Table(title="registered models")
        for col in ("task", "version", "aliases", "created_at"):
            models.add_column(col)
        for m in st.models:
            models.add_row(*(fmt(m.get(c)) for c in ("task", "version", "aliases", "created_at")))
        console.print(models)
    else:
        console.print("no models registered yet")



@app.command()
def mirror(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Rebuild the mirror from scratch.")] = False,
    with_stats: Annotated[bool, typer.Option("--stats/--no-stats", help="Also keep every pipeline's output as stats_<name>.")] = True,
) -> None:
    """Copy customers (flattened), events, predictions and pipeline outputs into $CUSTSCORE_HOME/mirror.sqlite.

    Incremental: a second run copies only what changed since the last one, and recomputes a pipeline's
    stats_<name> table only when a collection it reads changed.

    Example: custscore mirror && custscore sql "SELECT count(*) FROM customers"
    """
    from custscore.store.mirror import STATS_PREFIX
    from custscore.store.mirror import mirror as run_mirror

    started = time.perf_counter() - _process_age()
    settings: Settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        stats = {}
        if with_stats:
            from custscore.analytics.pipelines import stats_tables

            stats = stats_tables(store)
        with progress_bar() as progress:
            bars = _MirrorBars(progress, store, len(stats))
            report = run_mirror(store, settings.home / "mirror.sqlite", stats=stats, full=full, on_progress=bars)
            bars.finish()
    table = Table(title=f"SQL mirror {report.path}" + (" (rebuilt)" if report.full else ""))
    for column in ("table", "copied", "deleted", "rows now", "seconds"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, copy in report.tables.items():
        copied = "kept" if copy.kept else f"{copy.rows:,}"
        table.add_row(name, copied, f"{copy.deleted:,}", f"{copy.total:,}", f"{copy.seconds:.2f}")
    console.print(table)
    copied = sum(c.rows for n, c in report.tables.items() if not n.startswith(STATS_PREFIX))
    line = f"{copied:,} {'document' if copied == 1 else 'documents'} copied"
    if stats:
        line += (f", {len(report.refreshed)} of {len(stats)} stats tables recomputed"
                 + (f" ({len(report.kept)} kept: what they read did not change)" if report.kept else ""))
    console.print(f"{line}, in {time.perf_counter() - started:.1f} s", highlight=False)


def _process_age() -> float:
    """Seconds since this process started (Python's start-up and imports included), 0 where /proc cannot say."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class _MirrorBars:
    """The mirror's ``on_progress(table, rows)`` as a bar per collection (against its size) and one for stats."""

    def __init__(self, progress: Any, store: Any, n_stats: int):
        self.progress, self.store, self.n_stats = progress, store, n_stats
        self.bars: dict[str, Any] = {}

    def __call__(self, table: str, rows: int) -> None:
        from custscore.store.mirror import STATS_PREFIX

        name = "stats tables" if table.startswith(STATS_PREFIX) else table
        if name not in self.bars:
            total = self.n_stats if table.startswith(STATS_PREFIX) else self.store.collection(table).count()
            self.bars[name] = self.progress.add_task(f"mirror {name}", total=total)
        bar = self.bars[name]
        self.progress.advance(bar, 1 if table.startswith(STATS_PREFIX) else rows)
        task = self.progress.tasks[bar]
        if task.total is not None and task.completed > task.total:
            self.progress.update(bar, total=task.completed)

    def finish(self) -> None:
        """Every bar full at what was done: an incremental run copies fewer rows than the collection holds."""
        for bar in self.bars.values():
            self.progress.update(bar, total=self.progress.tasks[bar].completed)


@app.command()
def report(ctx: typer.Context, as_of: AsOfOpt = None) -> None:
    """Write the report: $CUSTSCORE_HOME/reports/<timestamp>/index.html (self-contained) plus PNG figures.

    Sections: overview, missing values and outliers with the preprocessing they call for, distributions,
    correlations, key relationships, group statistics, segments; per production model its leaderboard (winner
    marked), SHAP, ROC/PR, confusion matrix, gains/lift, reliability and drift; recommendations; demand
    forecasts; scorer health. Sections without data yet say which command fills them.

    Example: custscore report
    """
    from custscore.analytics.report import build_report
    from custscore.scorer.health import scorer_health

    settings: Settings = ctx.obj
    started = clock_now()
    out_dir = settings.home / "reports" / started.strftime("%Y%m%dT%H%M%S")
    with user_errors(), opened_store(ctx) as store:
        clock = command_clock(ctx, as_of)
        if clock.fixed:  # without --as-of the report measures at the data's own last event
            warn_if_stale(store, clock)
        with progress_bar() as bar:
            result = build_report(store, out_dir, settings, now=started, as_of=clock.now() if clock.fixed else None,
                                  progress=TaskBars(bar), scorer_health=scorer_health(store))
    console.print(f"[green]Report written[/]: {result.path} ({len(result.figures)} figures, {result.seconds:.1f}s)")
    for finding in result.findings:
        console.print(f"  • {finding}", highlight=False)
    table = Table(title="sections")
    table.add_column("section")
    table.add_column("state")
    for title, state in result.sections.items():
        colour = {"ok": "green", "empty": "yellow"}.get(state, "red")
        table.add_row(title, f"[{colour}]{state}[/]")
    console.print(table)
    if any(state != "ok" for state in result.sections.values()):
        console.print("sections not ok say in the HTML which command fills them")
