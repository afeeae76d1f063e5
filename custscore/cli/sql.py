"""The sql command: read-only SQL on the SQLite mirror, its tables (--tables) and their columns (--schema)."""

from __future__ import annotations

from typing import Annotated

import typer

from custscore.cli.common import CsvOpt, JsonOpt, app, console, fail, output_format, render_frame, user_errors
from custscore.config import Settings


@app.command()
def sql(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(help="One SELECT statement on the mirror.")] = None,
    example: Annotated[str | None, typer.Option(help="Run a named example query instead (see --list-examples).")] = None,
    list_examples: Annotated[bool, typer.Option("--list-examples", help="Show the example queries.")] = False,
    tables: Annotated[bool, typer.Option("--tables", help="List the mirror's tables with their row counts.")] = False,
    schema: Annotated[str | None, typer.Option("--schema", help="Show the columns of this table.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 1000,
    timeout: Annotated[float, typer.Option("--timeout", help="Stop the statement after this many seconds (0 = no limit).")] = 30.0,
    csv: CsvOpt = False,
    json_: JsonOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, even past the terminal's width.")] = False,
) -> None:
    """Run read-only SQL on the SQLite mirror (run `custscore mirror` first). Writes are refused.

    Limits: 30 s per statement (--timeout), 256 MB of SQLite memory, and only SQLite's core, date,
    math, JSON and window functions.

    Tables (custscore sql --tables): customers (id column customer_id, not _id; nested fields flattened
    with __, e.g. purchase_history__total_spent, score__risk), events (event_id, customer_id),
    predictions (prediction_id, customer_id), stats_<pipeline>. Columns: custscore sql --schema customers.

    Examples:

      custscore sql "SELECT count(*) FROM customers"

      custscore sql "SELECT customer_id, score__churn_probability FROM customers ORDER BY 2 DESC LIMIT 5"

      custscore sql --example satisfaction_by_age_group
    """
    from custscore.store.sql import EXAMPLE_QUERIES, mirror_schema, mirror_tables, run_sql

    settings: Settings = ctx.obj
    path = settings.home / "mirror.sqlite"
    output = output_format(csv, json_)
    if list_examples:
        for name, text in EXAMPLE_QUERIES.items():
            console.print(f"[bold]{name}[/]")
            console.print(text.strip(), markup=False, highlight=False)
            console.print()
        return
    if tables or schema is not None:
        if query or example:
            raise fail("--tables and --schema run no query; leave out the query and --example")
        with user_errors():
            frame = mirror_tables(path) if tables else mirror_schema(path, schema or "")
        note = ("columns of a table: custscore sql --schema customers" if tables
                else f"e.g. custscore sql \"SELECT * FROM {schema} LIMIT 5\"")
        render_frame(frame, output, title=f"SQL mirror {path}" if tables else f"{schema} ({len(frame)} columns)",
                     note=note if output == "table" else None, wide=wide)
        return
    if example is not None:
        if example not in EXAMPLE_QUERIES:
            raise fail(f"no example query {example!r}; choose one of {', '.join(EXAMPLE_QUERIES)}")
        query = EXAMPLE_QUERIES[example]
    if not query:
        raise fail('give a query, e.g. custscore sql "SELECT count(*) FROM customers", or --example NAME '
                   "(tables: --tables)")
    with user_errors():
        frame = run_sql(path, query, limit=limit, timeout=timeout)
    note = f"showing the first {limit:,} rows" if frame.attrs.get("truncated") else None
    render_frame(frame, output, note=note, wide=wide)
