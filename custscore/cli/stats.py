"""The stats command: a named pipeline's result, sorted, the first rows in a table or every row as CSV / JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from custscore.cli.common import (
    CsvOpt,
    JsonOpt,
    app,
    console,
    err_console,
    opened_store,
    output_format,
    render_frame,
    simple_table,
    user_errors,
)

TABLE_ROWS = 20  # a table's default: a screenful; exports get every row


@app.command()
def stats(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Pipeline name; leave out to list them.")] = None,
    by: Annotated[str | None, typer.Option(help="Group field, for pipelines that take one (e.g. region, channel).")] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="COLUMN[:-1], comma-separated, e.g. monetary:-1.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", help=f"Rows to show (default: {TABLE_ROWS} in a table, every row with --csv/--json; 0 = all).")] = None,
    csv: CsvOpt = False,
    json_: JsonOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, even past the terminal's width.")] = False,
) -> None:
    """Group statistics from named aggregation pipelines (they run inside the store).

    cohort_retention is shown as a grid: one row per signup month, one column per month since signup.

    Examples: custscore stats | custscore stats satisfaction_by_age | custscore stats rfm --sort monetary:-1 |
    custscore stats churn_by_group --by channel --csv
    """
    from custscore.analytics.pipelines import list_pipelines, run_pipeline
    from custscore.analytics.pipelines.views import cohort_grid, sort_frame

    output = output_format(csv, json_)
    if limit is not None and limit < 0:
        raise typer.BadParameter(f"must be 0 (all) or more, got {limit}", param_hint="--limit")
    if name is None:
        console.print(simple_table("pipelines (custscore stats NAME)", ("name", "collection", "--by", "what it answers"),
                                   ((i.name, i.collection, ", ".join(i.by) or "-", i.description)
                                    for i in list_pipelines())))
        return
    with user_errors(), opened_store(ctx) as store, err_console.status(f"running the {name} pipeline"):
        frame = run_pipeline(store, name, by=by)
        if name == "cohort_retention":
            frame = cohort_grid(frame)
        frame = sort_frame(frame, sort, name)
    shown = limit if limit is not None else (TABLE_ROWS if output == "table" else 0)
    total = len(frame)
    note = None if total else "no rows: the store has no data for this pipeline yet"
    if shown and total > shown:
        frame = frame.head(shown)
        if output == "table":
            command = f"custscore stats {name}" + (f" --by {by}" if by else "") + (f" --sort {sort}" if sort else "")
            note = (f"showing {shown:,} of {total:,} rows; all of them: {command} --limit 0, "
                    f"or export: {command} --csv > {name}.csv")
    if name == "cohort_retention" and output == "table":
        months = [c for c in frame.columns if c not in ("cohort", "cohort_size")]
        frame = frame.astype({m: object for m in months})
        for m in months:  # a share as a whole percentage keeps the grid narrow; the CSV keeps the full number
            frame[m] = [v if v != v else f"{v:.0%}" for v in frame[m]]
    render_frame(frame, output, title=name + (f" by {by}" if by else ""), note=note, wide=wide,
                 right=[c for c in frame.columns if c not in ("cohort", "cohort_size")] if name == "cohort_retention"
                 else ())
