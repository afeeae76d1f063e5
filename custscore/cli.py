"""The custscore command line: parse options, call one library function, render with rich.

Library errors (CustscoreError) become one red line on stderr and exit code 1.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from custscore import __version__
from custscore.config import Settings
from custscore.errors import CustscoreError
from custscore.store.base import Store

app = typer.Typer(
    help="custscore: customer-intelligence scoring on MongoDB or an embedded store.\n\n"
    "Example: custscore simulate --customers 20000 --seed 7 && custscore status",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)
MAX_PROBLEMS_SHOWN = 10


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except CustscoreError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; whole batches written so far are kept")
        raise typer.Exit(130) from None


@contextmanager
def _open(ctx: typer.Context) -> Iterator[Store]:
    from custscore.store import open_store

    settings: Settings = ctx.obj
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def _version(value: bool) -> None:
    if value:
        console.print(f"custscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    mongo_uri: Annotated[
        str | None,
        typer.Option(
            "--mongo-uri",
            envvar=None,
            help="mongodb://HOST:PORT/?replicaSet=rs0, embedded:PATH or memory:. "
            "Default: $CUSTSCORE_MONGO_URI, else embedded:$CUSTSCORE_HOME/store.sqlite.",
        ),
    ] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="Data directory. Default: $CUSTSCORE_HOME, else ./.custscore.")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="MongoDB database name. Default: $CUSTSCORE_DB, else custscore.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Global options come before the command."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )
    with _user_errors():
        ctx.obj = Settings.build(mongo_uri=mongo_uri, home=home, db_name=db)


def _parse_end(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"--end {value!r} is not a date; use YYYY-MM-DD") from None


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
        raise _fail(f"--customers must be >= 0, got {customers}")
    if customers == 0 and not stream:
        raise _fail("--customers 0 writes nothing; give a positive count or add --stream")
    with _user_errors(), _open(ctx) as store:
        if customers:
            config = SimulationConfig(
                customers, seed=seed, end=_parse_end(end), days=days,
                missing_rate=missing_rate, outlier_rate=outlier_rate,
            )
            with _progress() as progress:
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
            with _progress() as progress:
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
    if report.problems:
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            err_console.print(f"  [red]rejected[/] {problem}", highlight=False)
        more = len(report.problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            err_console.print(f"  ... and {more} more problems")
        raise _fail(f"{report.rejected:,} {kind} rejected (nothing of them stored); fix the rows above and ingest again")


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
    from custscore.ingest import ingest_file, parse_mapping

    if kind not in ("customers", "events"):
        raise _fail(f"cannot ingest {kind!r}; choose customers or events")
    with _user_errors(), _open(ctx) as store:
        mapping = parse_mapping(map_)
        with _progress() as progress:
            task = progress.add_task(f"ingesting {kind}", total=None)
            report = ingest_file(
                store, kind, file, mapping, date_format=date_format, batch_size=batch_size,
                on_progress=lambda n: progress.advance(task, n),
            )
        _print_report(report, kind)


def _fmt(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "-" if value is None else str(value)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the backend, documents per collection, the events' date range and registered models.

    Example: custscore status
    """
    from custscore.status import store_status

    with _user_errors(), _open(ctx) as store:
        st = store_status(store)
    table = Table(title=f"custscore store ({st.backend}: {st.location})")
    table.add_column("collection")
    table.add_column("documents", justify="right")
    for name, count in st.counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    if st.counts.get("customers"):
        console.print(f"customers with simulated ground truth: {st.simulated_customers:,}")
    if st.first_event is not None:
        console.print(f"events from {_fmt(st.first_event)} to {_fmt(st.last_event)}")
    if st.models:
        models = Table(title="registered models")
        for col in ("task", "version", "aliases", "created_at"):
            models.add_column(col)
        for m in st.models:
            models.add_row(*(_fmt(m.get(c)) for c in ("task", "version", "aliases", "created_at")))
        console.print(models)
    else:
        console.print("no models registered yet")



