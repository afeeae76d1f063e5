"""Demand forecasting commands: ``forecast``, ``stock import`` and ``stockouts`` (``train --task demand`` lives in modelling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from custscore.cli.common import app, console, fail, opened_store, user_errors

stock_app = typer.Typer(no_args_is_help=True, help="On-hand stock per product (and store) for `custscore stockouts`: import.")
app.add_typer(stock_app, name="stock")


def render_demand_leaderboard(result: Any) -> None:
    """The backtest leaderboard of a demand run, the rule and what was written."""
    bt = result.backtest
    table = Table(title=f"demand leaderboard ({len(bt.windows)} rolling-origin windows of {bt.horizon} x {result.freq}; "
                        f"{result.series} series by {'+'.join(result.by) or 'total'}; lower MASE is better)")
    for col in ("model", "MASE", "WAPE", "sMAPE", "bias", "80% cover", "95% cover", "series/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in bt.leaderboard.to_dict("records"):
        star = " *" if r["model"] == bt.winner else ""
        sps = "" if r["series_per_s"] != r["series_per_s"] else f"{r['series_per_s']:,.1f}"
        table.add_row(f"{r['model']}{star}", f"{r['mase']:.3f}", f"{r['wape']:.3f}", f"{r['smape']:.3f}",
                      f"{r['bias']:+.3f}", f"{r['cov80']:.0%}", f"{r['cov95']:.0%}", sps)
    console.print(table)
    console.print(f"  rule: {bt.rule}", highlight=False)
    console.print(f"  winner [bold green]{bt.winner}[/]: {result.written:,} forecasts written as {result.version} "
                  f"(as of {result.as_of:%Y-%m-%d}) in {result.seconds:.1f}s", highlight=False)
    if result.registered:
        console.print(f"  backtest leaderboard registered as {result.registered} (custscore models --task demand)",
                      highlight=False)


def run_demand(ctx: typer.Context, by: str, freq: str, horizon: int | None, windows: int = 3,
               families: str | None = None, select: str = "global") -> Any:
    """Train demand forecasts for ``train --task demand`` and print the leaderboard."""
    from custscore.forecast.production import DemandOptions, train_demand

    options = DemandOptions(by=by, freq=freq, horizon=horizon, windows=windows, select=select,
                            families=tuple(f.strip() for f in families.split(",")) if families else None)
    with user_errors(), opened_store(ctx) as store:
        result = train_demand(store, options, settings=ctx.obj)
    render_demand_leaderboard(result)
    return result


@app.command()
def forecast(
    ctx: typer.Context,
    key: Annotated[list[str] | None, typer.Option("--key", help="Series key, e.g. books-0003 or books-0003|ST002 "
                                                                 "(repeatable; default: the first 3).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Forecast version (default: the latest).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also save a PNG of history, forecast and intervals here.")] = None,
    history: Annotated[int, typer.Option("--history", help="Periods of history in the figure.")] = 90,
) -> None:
    """Show stored demand forecasts with their 80%/95% intervals (and a figure with --plot).

    Example: custscore forecast --key books-0003 --plot forecast.png
    """
    from custscore.forecast.production import history_of, read_forecasts

    if history < 1:
        raise fail(f"--history must be >= 1 period, got {history}")
    with user_errors(), opened_store(ctx) as store:
        frame = read_forecasts(store, version, key)
        if not key:
            first = list(dict.fromkeys(frame["key"]))[:3]
            frame = frame[frame["key"].isin(first)]
        past = history_of(store, frame, history) if plot else None
    table = Table(title=f"forecasts {frame['version'].iloc[0]} ({frame['model'].iloc[0]}, as of "
                        f"{frame['as_of'].iloc[0]:%Y-%m-%d})")
    for col in ("key", "period", "yhat", "80% interval", "95% interval", "model"):
        table.add_column(col, justify="right" if col in ("yhat",) else "left")
    for r in frame.to_dict("records"):
        table.add_row(r["key"], f"{r['period']:%Y-%m-%d}", f"{r['yhat']:.1f}", f"{r['lo80']:.1f} .. {r['hi80']:.1f}",
                      f"{r['lo95']:.1f} .. {r['hi95']:.1f}", r["model"])
    console.print(table)
    if plot is not None:
        from custscore.forecast.plot import plot_forecasts

        with user_errors():
            console.print(f"figure: {plot_forecasts(past, frame, plot)}", highlight=False)


@stock_app.command("import")
def stock_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV/Parquet with product_id, on_hand (and store_id, lead_time_days).")],
    replace: Annotated[bool, typer.Option("--replace", help="Empty the stored stock first (a full stock count).")] = False,
) -> None:
    """Store on-hand stock in the `stock` collection; a product (and store) imported again gets the new quantity.

    Example: custscore stock import stock.csv && custscore stockouts --lead-time 5
    """
    from custscore.forecast.stock import import_stock, read_stock
    from custscore.store.schema import STOCK

    with user_errors(), opened_store(ctx) as store:
        written = import_stock(store, read_stock(file), replace=replace)
        total = store.collection(STOCK).count()
    console.print(f"stock: {written:,} row{'' if written == 1 else 's'} imported from {file.name}{' (replacing the stored stock)' if replace else ''}; "
                  f"{total:,} products/stores held. next: custscore stockouts", highlight=False)


@app.command()
def stockouts(
    ctx: typer.Context,
    stock: Annotated[Path | None, typer.Option("--stock", help="CSV/Parquet with product_id, on_hand (and store_id, "
                                                               "lead_time_days); default: the stored stock "
                                                               "(custscore stock import).")] = None,
    lead_time: Annotated[float, typer.Option("--lead-time", help="Days until an order arrives.")] = 7.0,
    threshold: Annotated[float, typer.Option("--threshold", help="Reorder at this P(stockout within lead time).")] = 0.2,
    version: Annotated[str | None, typer.Option("--version", help="Forecast version (default: the latest).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many rows.")] = 30,
) -> None:
    """Days of cover, the probability of a stockout within the lead time, and the reorder list.

    Example: custscore stockouts --lead-time 5   (after custscore stock import stock.csv; or --stock stock.csv)
    """
    from custscore.forecast.production import read_forecasts
    from custscore.forecast.stock import read_stock, stock_cover, stored_stock

    if lead_time <= 0:
        raise fail(f"--lead-time must be > 0 days, got {lead_time}")
    if not 0 < threshold <= 1:
        raise fail(f"--threshold must be in (0, 1], got {threshold}")
    with user_errors(), opened_store(ctx) as store:
        on_hand = read_stock(stock) if stock is not None else stored_stock(store)
        cover = stock_cover(read_forecasts(store, version), on_hand, lead_time, threshold)
    table = Table(title=f"stock cover ({int(cover['reorder'].sum())} of {len(cover)} series to reorder at "
                        f"P(stockout) >= {threshold:.0%})")
    for col in ("key", "on hand", "days of cover", "lead time demand", "P(stockout)", "order"):
        table.add_column(col, justify="left" if col == "key" else "right")
    for r in cover.head(limit).to_dict("records"):
        style = "bold red" if r["reorder"] else ""
        table.add_row(r["key"], f"{r['on_hand']:,.0f}", f"{r['days_of_cover']:.1f}", f"{r['demand_lead_time']:.1f}",
                      f"{r['p_stockout']:.0%}", f"{r['order_qty']:,}" if r["reorder"] else "", style=style)
    console.print(table)
