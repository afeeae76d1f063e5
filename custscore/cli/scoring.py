"""Scoring commands: score (the worker), insert, query, monitor, dead-letters."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from custscore.cli.common import (
    MAX_PROBLEMS_SHOWN,
    AsOfOpt,
    CsvOpt,
    JsonOpt,
    app,
    column_cells,
    command_clock,
    console,
    err_console,
    fail,
    fmt,
    frame_csv,
    opened_store,
    output_format,
    print_score,
    progress_bar,
    render_frame,
    simple_table,
    user_errors,
    wait_for_locks,
    warn_if_stale,
)
from custscore.config import Settings


def stats_panel(stats: Any) -> Table:
    """The live panel of a running worker."""
    table = Table(title=f"scorer {stats.worker}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")

    def ms(v):
        return "-" if v is None else f"{v:,.0f} ms"

    max_age = getattr(stats, "max_age", None)
    more = "+" if getattr(stats, "stale_at_least", False) else ""
    stale = (f"{stats.stale:,}{more} older than {_age(max_age)} ({stats.swept:,} re-scored)" if max_age
             else "sweep off (--max-age 0)")
    rows = [("scored", f"{stats.scored:,} ({stats.replayed:,} unchanged, {stats.echoes:,} echoes skipped)"),
            ("throughput", f"{stats.throughput:,.1f} customers/s"),
            ("latency p50 / p99", f"{ms(stats.latency_p50_ms)} / {ms(stats.latency_p99_ms)}"),
            ("backlog", f"{stats.backlog:,}" + (" (caught up)" if stats.caught_up else "")),
            ("stale scores", stale), ("clock", getattr(stats, "clock", "wall clock")),
            ("dead letters", f"{stats.dead_letters:,}"), ("batches", f"{stats.batches:,}"),
            ("models", "\n".join(f"{task} {version}" for task, version in sorted(stats.versions.items())) or "none")]
    if stats.switches:
        rows.append(("hot reload", stats.switches[-1]))
    for r in rows:
        table.add_row(*r)
    return table


def _age(age: Any) -> str:
    seconds = age.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@app.command()
def score(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", help="Keep following the change feeds until SIGINT/SIGTERM.")] = False,
    once: Annotated[bool, typer.Option("--once", help="Drain the backlog and exit (the default).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Customers per micro-batch at most.")] = 256,
    max_wait_ms: Annotated[int, typer.Option("--max-wait-ms", help="Flush a partial batch after this long.")] = 500,
    workers: Annotated[int, typer.Option("--workers", help="Total workers sharing the customers.")] = 1,
    worker_index: Annotated[int, typer.Option("--worker-index", help="This worker's partition, 0..workers-1.")] = 0,
    processes: Annotated[int, typer.Option(
        "--processes", help="Run this many worker processes here (one per core), each scoring its share of the "
                            "customers, as --workers N --worker-index 0..N-1 would.")] = 1,
    as_of: AsOfOpt = None,
    max_age: Annotated[str, typer.Option("--max-age", help="Re-score customers whose score is older than this "
                                                           "(1d, 12h; at most once per as-of day); 0 = off.")] = "1d",
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="With --watch: serve Prometheus metrics on this port (/metrics).")] = None,
    metrics_host: Annotated[str, typer.Option("--metrics-host", help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Score new, changed and aged customers with the production models and write scores and SHAP reasons back.

    Example: custscore score --once      (or: custscore score --watch --processes 2, one worker per core)
    """
    from custscore.clock import parse_age
    from custscore.scorer.recommending import production_worker

    if watch and once:
        raise fail("choose one of --watch and --once")
    if processes != 1 and (workers != 1 or worker_index != 0):
        raise fail(f"--processes {processes} runs every partition here; drop --workers/--worker-index, or run one "
                   "command per partition with --workers N --worker-index I")
    settings: Settings = ctx.obj
    if processes != 1:
        with user_errors():
            _score_in_processes(ctx, processes, watch, as_of, metrics_port, metrics_host, batch_size=batch_size,
                                max_wait_ms=max_wait_ms, max_age=parse_age(max_age))
        return
    with user_errors(), opened_store(ctx) as store:
        if watch:
            wait_for_locks(store)  # a held write lock pauses the worker; it does not stop it
        clock = command_clock(ctx, as_of)
        worker = production_worker(store, settings, batch_size=batch_size, max_wait_ms=max_wait_ms, workers=workers,
                                   worker_index=worker_index, clock=clock, max_age=parse_age(max_age))
        warn_if_stale(store, clock)
        if not watch:
            with progress_bar() as bar:
                task = bar.add_task("scoring", total=None)
                stats = worker.run_once(_advancing(bar, task))
                bar.update(task, total=bar.tasks[0].completed)  # caught up: what was done is the whole
            console.print(stats_panel(stats))
            return
        meter = _worker_metrics(metrics_port, metrics_host)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with Live(console=err_console, refresh_per_second=4, transient=False) as live:
                seen_switches = [0]

                def on_batch(stats: Any) -> None:
                    if meter is not None:
                        meter.update(stats, stats.batch_latencies_ms)
                    live.update(stats_panel(stats))
                    for line in stats.switches[seen_switches[0]:]:
                        live.console.print(f"[yellow]{line}[/]")
                    seen_switches[0] = len(stats.switches)

                stats = worker.run(stop, on_batch)
                live.update(stats_panel(stats))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    console.print(f"stopped after {stats.scored:,} {'score' if stats.scored == 1 else 'scores'}; resume token saved")


def _advancing(bar: Any, task: Any) -> Any:
    """A worker's on_batch that moves ``task`` of ``bar``: done and waiting, the total growing as the feeds bring
    more."""
    def advance(stats: Any) -> None:
        done = stats.scored + stats.replayed + stats.dead_letters
        bar.update(task, completed=done, total=done + stats.backlog)

    return advance


def _worker_metrics(port: int | None, host: str) -> Any:
    """``--metrics-port``: the worker's Prometheus metrics served on ``host:port``, or None."""
    if port is None:
        return None
    from custscore.api.metrics import WorkerMetrics

    if not 0 < port < 65536:
        raise fail(f"--metrics-port {port} is not a TCP port; use 1-65535, e.g. --metrics-port 9108")
    meter = WorkerMetrics()
    try:
        meter.serve(port, host)
    except OSError as exc:
        raise fail(f"--metrics-port {port}: {exc.strerror or exc}; choose a free port") from None
    err_console.print(f"metrics on http://{host}:{port}/metrics", highlight=False)
    return meter


def _score_in_processes(ctx: typer.Context, processes: int, watch: bool, as_of: str | None, metrics_port: int | None,
                        metrics_host: str, **options: Any) -> None:
    """``score --processes N``: N worker processes, one partition each; one live panel (or progress bar) for all."""
    from custscore.scorer.pool import WorkerPool

    settings: Settings = ctx.obj
    with opened_store(ctx) as store:  # refuses a store that cannot be opened before any child starts
        warn_if_stale(store, command_clock(ctx, as_of))
    meter = _worker_metrics(metrics_port, metrics_host) if watch else None
    pool = WorkerPool(settings, processes, watch=watch, as_of=as_of, **options)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    errors: list[str] = []

    def follow(show: Any) -> None:  # until every child ends, one fails, or (watching) a signal comes
        while not pool.done and not errors and not stop.is_set():
            for kind, index, payload in pool.reports(0.25):
                if kind == "error":
                    errors.append(payload)
                elif kind == "lock":
                    err_console.print(f"[yellow]worker process {index} is waiting for the store's write lock, "
                                      f"held by another process ({payload:.0f} s so far)[/]", highlight=False)
                elif kind == "batch" and meter is not None:
                    meter.update(pool.combined(), payload.batch_latencies_ms)
            show(pool.combined())

    try:
        pool.start()
        if watch:
            with Live(console=err_console, refresh_per_second=4, transient=False) as live:
                follow(lambda stats: live.update(stats_panel(stats)))
                pool.stop()
                live.update(stats_panel(pool.combined()))
        else:
            with progress_bar() as bar:
                task = bar.add_task(f"scoring in {processes} processes", total=None)
                follow(_advancing(bar, task))
                pool.stop()
                bar.update(task, total=bar.tasks[0].completed)
            console.print(stats_panel(pool.combined()))
    finally:
        pool.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if errors:
        raise fail(errors[0])
    if watch:
        scored = pool.combined().scored
        console.print(f"stopped after {scored:,} {'score' if scored == 1 else 'scores'} in {processes} processes; "
                      "resume tokens saved")


@app.command()
def insert(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Customer documents: JSON, a JSON array or JSON lines; '-' = stdin.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until each is scored, then print the scores.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait.")] = 60.0,
    as_of: AsOfOpt = None,
) -> None:
    """Insert customer documents (validated like ingest) so the scorer picks them up.

    Example: echo '{"_id": "N1", "age": 30, "income": 40000, "signup_date": "2026-11-01"}' | custscore insert - --wait
    """
    from custscore.scorer.document_stream import iter_documents
    from custscore.scorer.inserting import insert_customers, summary_line, wait_for_scores

    settings: Settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        clock = command_clock(ctx, as_of)
        # streamed: documents are read, validated and stored in batches, never the whole file at once
        report = insert_customers(store, iter_documents(sys.stdin if file == "-" else Path(file)), collect_ids=wait)
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            err_console.print(f"[yellow]refused[/] {problem}", highlight=False)
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            err_console.print(f"  ... and {len(report.problems) - MAX_PROBLEMS_SHOWN:,} more problems")
        refused = report.rejected
        stored = [str(i) for i in report.stored_ids or []]
        console.print(summary_line(report), highlight=False)
        if not wait or not stored:
            if refused:
                raise typer.Exit(1)
            return

        def inline(pending: list[str]) -> None:
            from custscore.scorer.batch import score_customers
            from custscore.scorer.recommending import load_scoring_models

            score_customers(store, load_scoring_models(store, settings), pending, as_of=clock.now())

        warn_if_stale(store, clock)
        if clock.fixed:  # a running worker scores on its own clock: a pinned date is scored here
            inline(stored)
        scored = wait_for_scores(store, stored, timeout_s=timeout, inline=inline)
    print_scored(scored)
    if refused:
        raise typer.Exit(1)


def print_scored(docs: list[dict]) -> None:
    for doc in docs:
        print_score(doc["_id"], doc.get("score") or {})


@app.command()
def query(
    ctx: typer.Context,
    filter_json: Annotated[str, typer.Argument(help='A Mongo filter, e.g. \'{"score.risk": "high"}\'.')] = "{}",
    sort: Annotated[str | None, typer.Option("--sort", help="e.g. score.churn_probability:-1,age")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show (0 = all; a table shows at most 1,000).")] = 20,
    fields: Annotated[str | None, typer.Option("--fields", help="Comma-separated fields to show.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Stop the query after this many seconds (0 = no limit).")] = 30.0,
    csv: CsvOpt = False,
    json_: JsonOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, even past the terminal's width.")] = False,
) -> None:
    """Run a Mongo query on customers (scores included) and show the matches as a table.

    A table shows at most 1,000 rows and the columns that fit the terminal (the filter's and the sort's fields
    first; --wide or --fields for the rest); --csv and --json stream every row (export: --limit 0 --csv > all.csv).

    Example: custscore query '{"score.risk": "high", "region": "north"}' --sort score.churn_probability:-1 --limit 10
    """
    from custscore.store.query import (
        check_limit,
        filter_fields,
        iter_customer_frames,
        parse_filter,
        parse_sort,
        query_customers,
    )

    output = output_format(csv, json_)
    columns = [f.strip() for f in fields.split(",")] if fields else None
    with user_errors(), opened_store(ctx) as store:
        spec = parse_filter(filter_json)
        check_limit(limit)
        if output != "table":  # streamed in bounded tables: an export of any size
            header = True
            for frame in iter_customer_frames(store, spec, sort=sort, limit=limit, fields=columns, timeout=timeout):
                text = (frame_csv(frame, header=header) if output == "csv"
                        else frame.to_json(orient="records", lines=True, date_format="iso") if len(frame) else "")
                if text and not text.endswith("\n"):
                    text += "\n"
                console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
                header = False
            return
        capped = not 0 < limit <= TABLE_MAX_ROWS
        shown = TABLE_MAX_ROWS if capped else limit
        frame = query_customers(store, spec, sort=sort, limit=shown + capped, fields=columns, timeout=timeout)
    note = f"{len(frame):,} {'row' if len(frame) == 1 else 'rows'}"
    if len(frame) > shown:
        frame = frame.iloc[:shown]
        note = (f"showing the first {shown:,} rows; export them all with --csv or --json, "
                f"e.g. custscore query '{filter_json}' --limit {limit} --csv > customers.csv")
    named = [*filter_fields(spec), *(name for name, _ in parse_sort(sort)), *(columns or [])]
    first = [str(c) for c in frame.columns if any(str(c) == n or str(c).startswith(n + ".") for n in named)]
    render_frame(frame, output, title=f"customers matching {filter_json}", note=note, wide=wide,
                 more="with --wide or --fields", first=first)


TABLE_MAX_ROWS = 1000  # a terminal table past this is unreadable and costs memory; exports stream instead


@app.command()
def monitor(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", help="Most recent scored customers to compare.")] = 5000,
    as_of: AsOfOpt = None,
) -> None:
    """Population stability (PSI) of features and predictions: recent scores against the training data.

    Bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 shift. Exits 1 past the alert band (for cron).
    Example: custscore monitor --limit 2000
    """
    from custscore.scorer.monitor import exit_code, production_references
    from custscore.scorer.monitor import monitor as run_monitor

    with user_errors(), opened_store(ctx) as store:
        clock = command_clock(ctx, as_of)
        references = production_references(store)
        if not references:
            raise fail("no production model with a training reference; train first: custscore train --task all")
        warn_if_stale(store, clock)
        result = run_monitor(store, references, limit=limit, as_of=clock.now() if clock.fixed else None)
    if result.frame.empty:
        console.print(result.message or "nothing to compare yet")
        raise typer.Exit(exit_code(result))
    colour = {"stable": "green", "moderate": "yellow", "shift": "red"}
    table = Table(title=f"drift over the last {result.n_recent:,} scored customers")
    cols = [c for c in ("task", "kind", "name", "psi", "band", "bucket", "ref_share", "now_share")
            if c in result.frame.columns]
    for c in cols:
        table.add_column(c, justify="right" if c in ("psi", "ref_share", "now_share") else "left")
    cells = {c: column_cells(result.frame[c].tolist()) for c in cols}
    for i, band in enumerate(result.frame["band"].tolist() if "band" in cols else [None] * len(result.frame)):
        table.add_row(*(f"[{colour.get(band, 'white')}]{band}[/]" if c == "band" else cells[c][i] for c in cols))
    console.print(table)
    console.print(f"worst band: [{colour.get(result.worst_band, 'white')}]{result.worst_band}[/]. {result.message}")
    raise typer.Exit(exit_code(result))


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    retry: Annotated[bool, typer.Option("--retry", help="Score them again (after fixing the documents).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many to list.")] = 50,
) -> None:
    """List documents the scorer could not score, with the reason; --retry scores the fixed ones.

    Example: custscore dead-letters --retry
    """
    from custscore.scorer.deadletters import list_dead_letters
    from custscore.scorer.retry import retry_dead_letters

    settings: Settings = ctx.obj
    with user_errors(), opened_store(ctx) as store:
        if retry:
            from custscore.scorer.recommending import load_scoring_models

            report = retry_dead_letters(store, load_scoring_models(store, settings))
            console.print(f"retried: {report.scored:,} scored, {report.still_bad:,} still bad, "
                          f"{report.gone:,} no longer in the store")
            return
        rows = list_dead_letters(store, limit)
    if not rows:
        console.print("no dead letters")
        return
    console.print(simple_table("dead letters", ("customer", "reason", "attempts", "created"),
                               ((r.get("customer_id"), r.get("reason"), r.get("attempts", 0), fmt(r.get("created_at")))
                                for r in rows)))
