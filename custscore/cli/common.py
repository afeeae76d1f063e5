"""Shared pieces of the command line: the typer app, global options, consoles, error handling, tables.

Library errors (CustscoreError) become one red line on stderr and exit code 1.
"""

from __future__ import annotations

import datetime as dt
import logging
import numbers
import os
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from custscore import __version__
from custscore.config import Settings
from custscore.errors import CustscoreError
from custscore.redact import RedactingFilter, redact
from custscore.store.base import Store

app = typer.Typer(
    help="custscore: customer-intelligence scoring on MongoDB or an embedded store.\n\n"
    "Example: custscore simulate --customers 20000 --seed 7 && custscore status",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
# The `custscore models` group: modelling.py registers it on app, leaderboards.py and serving.py add commands.
models_app = typer.Typer(no_args_is_help=False, help="The model registry: list (the default), export, import.")
# Piped output (CI logs, files, `| less`) gets room for the leaderboards instead of rich's 80-column default,
# unless COLUMNS says how wide (rich reads it).
PIPED_WIDTH = 150


def _piped_width() -> int:
    """COLUMNS when it holds a width, else :data:`PIPED_WIDTH`; read once, so a later change cannot shrink tables."""
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else PIPED_WIDTH


console = Console(width=None if sys.stdout.isatty() else _piped_width())
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else _piped_width())
MAX_PROBLEMS_SHOWN = 10


def wait_for_locks(store: Store) -> None:
    """Long-running commands: wait for a write lock another process holds, saying so, instead of failing."""
    from custscore.store.locking import wait_for_write_lock

    def say(waited: float) -> None:
        err_console.print(f"[yellow]waiting for the store's write lock, held by another process "
                          f"({waited:.0f} s so far)[/]", highlight=False)

    wait_for_write_lock(store, say)


def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {redact(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except CustscoreError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; whole batches written so far are kept")
        raise typer.Exit(130) from None


@contextmanager
def opened_store(ctx: typer.Context) -> Iterator[Store]:
    from custscore.store import open_store

    settings: Settings = ctx.obj
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


class TaskBars:
    """A ``progress(what, done, total)`` callback for the core: one bar per task (the text before ':')."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.bars: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        name = what.split(":")[0]
        if name not in self.bars:
            self.bars[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.bars[name], completed=done, total=total, description=what)

    def finish(self) -> None:
        """Fill every bar under its task's name: the task is done even where the last step was not reported."""
        for key in self.bars.values():
            task = self.bar.tasks[key]
            self.bar.update(key, completed=task.total, description=task.description.split(":")[0])


def print_tradeoffs_and_notes(board: Any, notes: list[str]) -> None:
    """Under a leaderboard: each candidate's trade-off, then the run's notes."""
    for row in board.to_dict("records"):
        if row.get("tradeoff"):
            console.print(f"  [bold]{row['model']}[/]: {row['tradeoff']}", highlight=False)
    for note in notes:
        console.print(f"  - {note}", highlight=False)


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
    for handler in logging.getLogger().handlers:  # no password of any URI in any log line
        handler.addFilter(RedactingFilter())
    with user_errors():
        ctx.obj = Settings.build(mongo_uri=mongo_uri, home=home, db_name=db)


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float | dt.datetime) and value != value):  # None, NaN, NaT
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple) and value and all(isinstance(v, dict) and "product_id" in v for v in value):
        # score.recommendations: one line per product with its reason, not a list of dict reprs
        return "\n".join(f"{v['product_id']}: {v.get('reason', '-')}" for v in value)
    if isinstance(value, list | tuple):  # aliases: "production", not "['production']"
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, str) and len(value) > 16 and value[4:5] == "-" and value[10:11] == "T":
        try:  # an ISO timestamp string from a manifest: to the minute, like datetimes
            return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return str(value)


CELL_PAD = 3  # rich's padding and border per column of a boxed table


def _widest_line(text: str) -> int:
    return max(map(cell_len, text.split("\n"))) if "\n" in text else cell_len(text)


def fitting_columns(headers: list[str], rows: list[list[str]], width: int,
                    first: Collection[str] = ()) -> list[int]:
    """Indices of the columns to show, in table order: the first column always, then the ones named in
    ``first``, then the rest in order, until the next one would not fit ``width``."""
    widths = [max([cell_len(h), *(_widest_line(r[i]) for r in rows)]) + CELL_PAD for i, h in enumerate(headers)]
    order = sorted(range(len(headers)), key=lambda i: (i != 0, headers[i] not in first, i))
    chosen, used = [], 1
    for i in order:
        if chosen and used + widths[i] > width:
            break
        chosen.append(i)
        used += widths[i]
    return sorted(chosen)


def simple_table(title: str | None, headers: Sequence[str], rows: Iterable[Sequence[Any]],
                 right: Collection[str] = (), **options: Any) -> Table:
    """A titled table of cells shown as given (``str``), the columns named in ``right`` right-aligned."""
    table = Table(title=title, **options)
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def fitted_table(title: str | None, headers: list[str], rows: list[list[str]], right: Collection[str] = (),
                 wide: bool = False, width: int | None = None,
                 styles: Sequence[str | None] | None = None, first: Collection[str] = ()) -> tuple[Table, list[str]]:
    """A table whose cells and headers are never cut: the columns that fit ``width`` (all with ``wide``),
    those named in ``first`` before the others.

    Returns the table and the headers of the columns left out.
    """
    keep = list(range(len(headers))) if wide else fitting_columns(headers, rows, width or console.width, first)
    table = Table(title=title)
    for i in keep:
        table.add_column(headers[i], justify="right" if headers[i] in right else "left", no_wrap=True,
                         overflow="fold")
    for n, cells in enumerate(rows):
        table.add_row(*(cells[i] for i in keep), style=styles[n] if styles else None)
    return table, [h for i, h in enumerate(headers) if i not in keep]


def print_fitted(table: Table, hidden: list[str], how: str = "with --wide", wide: bool = False) -> None:
    """Print a :func:`fitted_table`, then ``2 more columns with --wide: a, b`` when columns were left out.

    With ``wide`` the table is drawn at its own width, past the terminal's, instead of folding its cells.
    """
    saved = console.width
    if wide:
        console.width = max(saved, console.measure(table, options=console.options.update(max_width=10**5)).maximum)
    try:
        console.print(table)
    finally:
        console.width = saved
    if hidden:
        console.print(f"  {len(hidden)} more {'column' if len(hidden) == 1 else 'columns'} {how}: "
                      + ", ".join(hidden), highlight=False, soft_wrap=True)


def render_frame(frame: Any, output: str, title: str | None = None, note: str | None = None, wide: bool = False,
                 more: str = "with --wide", first: Collection[str] = (), right: Collection[str] = ()) -> None:
    """Show a DataFrame as a rich table (the columns that fit; ``more`` says how to see the rest), CSV or JSON lines."""
    import pandas as pd

    if output == "csv":
        console.print(frame_csv(frame), end="", markup=False, highlight=False, soft_wrap=True)
        return
    if output == "json":
        console.print(frame.to_json(orient="records", lines=True, date_format="iso"), end="", markup=False,
                      highlight=False, soft_wrap=True)
        return
    headers = [str(c) for c in frame.columns]
    right = {*right, *(str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]))}
    columns = [column_cells(frame[c].tolist()) for c in frame.columns]
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    table, hidden = fitted_table(title, headers, rows, right, wide, first=first)
    print_fitted(table, hidden, more, wide)
    if note:
        console.print(note, highlight=False, soft_wrap=True)


def frame_csv(frame: Any, header: bool = True) -> str:
    """CSV with every float in one style: the shortest text that reads back as the same number (``repr``)."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [None if v != v else repr(float(v)) for v in out[column]]
    return out.to_csv(index=False, header=header)


def cell(value: Any) -> str:
    """A table cell: counts with thousands separators, floats to 3 decimals, dates to the minute, missing as -."""
    if isinstance(value, float):
        return "-" if value != value else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy's integers too
        return f"{value:,}"
    return fmt(value)


def column_cells(values: Sequence[Any]) -> list[str]:
    """One column's cells in one style: like :func:`cell`, but every float with the same decimals (as many as
    the column needs, at most 3), so ``0.14`` and ``0.174`` read ``0.140`` and ``0.174`` one under the other."""
    floats = [v for v in values if isinstance(v, float) and v == v]
    if not floats:
        return [cell(v) for v in values]
    decimals = max(len(f"{v:.3f}".rstrip("0").split(".")[1]) for v in floats)
    return ["-" if v != v else f"{v:,.{decimals}f}" if isinstance(v, float) else cell(v) for v in values]


def output_format(csv: bool, json_: bool) -> str:
    if csv and json_:
        raise fail("choose one of --csv and --json")
    return "csv" if csv else "json" if json_ else "table"


CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")]


def print_score(customer_id: Any, score: dict, reasons_by_task: dict | None = None) -> None:
    """One customer's score on one line, then its reasons (per task when given) with their contributions."""
    parts = [f"[bold]{customer_id}[/]"]
    band = score.get("risk")
    if score.get("churn_probability") is not None:
        parts.append(f"churn {score['churn_probability']:.1%} " + ("(new: no purchase yet)" if band == "new" else
                                                                   f"({band} risk)"))
    elif band == "new":  # no first_purchase model was trained (a store of buyers only)
        parts.append("new: no purchase yet")
    if score.get("first_purchase_probability") is not None:
        parts.append(f"first purchase {score['first_purchase_probability']:.1%}")
    if score.get("p_alive") is not None:
        parts.append(f"P(alive) {score['p_alive']:.0%}")
    if score.get("expected_purchases") is not None:
        parts.append(f"expected purchases {score['expected_purchases']:.1f}")
    if score.get("clv_12m") is not None:
        parts.append(f"CLV 12m {score['clv_12m']:,.0f}")
    if "satisfaction" in score:
        parts.append(f"satisfaction {score['satisfaction']:.1f}/10")
    if "segment_name" in score:
        parts.append(f"segment {score['segment_name']}")
    if score.get("latency_ms") is not None:
        parts.append(f"[dim]{score['latency_ms']:,.0f} ms[/]")
    console.print("  ".join(parts), highlight=False)
    groups = reasons_by_task or {score.get("reasons_task", "churn"): score.get("reasons") or []}
    for task, reasons in groups.items():
        console.print(f"  [dim]{task}[/]", highlight=False)
        for r in reasons:
            console.print(f"    {'+' if r['contribution'] > 0 else '-'} {r['sentence']} "
                          f"[dim]({r['contribution']:+.3f})[/]", highlight=False)


def versions_text(versions: dict) -> str:
    """``churn 20261202-070802-60035f, segment 20261202-…``: model versions as words, never JSON."""
    return ", ".join(f"{task} {version}" for task, version in sorted(versions.items())) or "none"


def write_rows(path: Path, kind: str, records: list[dict]) -> None:
    """Write ``records`` to ``path`` as CSV (one float style, :func:`frame_csv`) or JSON lines."""
    import json

    import pandas as pd

    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            if kind == "csv":
                out.write(frame_csv(pd.DataFrame(records)))
            else:
                out.writelines(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in records)
    except OSError as exc:
        raise fail(f"--out {str(path)!r}: {exc.strerror or exc}; choose a writable path") from None


AsOfOpt = Annotated[str | None, typer.Option(
    "--as-of", help="Score as of this date, YYYY-MM-DD (its end) or YYYY-MM-DDTHH:MM: features see only events up to "
                    "it. Default: $CUSTSCORE_AS_OF, else now.")]


def command_clock(ctx: typer.Context, as_of: str | None) -> Any:
    """The as-of clock of a command: --as-of over CUSTSCORE_AS_OF over the wall clock."""
    settings: Settings = ctx.obj
    return settings.clock(as_of)


def warn_if_stale(store: Store, clock: Any) -> None:
    """The stale-data warning, once, in yellow on stderr (nothing when the data is recent enough)."""
    from custscore.scorer.staleness import stale_data_warning

    message = stale_data_warning(store, clock.now())
    if message:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
