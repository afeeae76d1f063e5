"""The report's demand section: the backtest leaderboard of the stored forecasts, interval coverage, and a
few series plotted with their 80% and 95% intervals (the forecast package's own figure).
"""

from __future__ import annotations

import pandas as pd

from custscore.analytics.page import WINNER, Figures, Section, heading, paragraph, table
from custscore.errors import CustscoreError
from custscore.store.base import Store

TRAIN_DEMAND = "run custscore train --task demand"
SHOWN_SERIES = 4


def largest_series(frame: pd.DataFrame, n: int = SHOWN_SERIES) -> list[str]:
    """The ``n`` series keys with the most forecast demand over the horizon."""
    return list(frame.groupby("key")["yhat"].sum().sort_values(ascending=False, kind="stable").head(n).index)


def _summary(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.assign(width80=frame["hi80"] - frame["lo80"], width95=frame["hi95"] - frame["lo95"]).groupby("key")
    return pd.DataFrame({"model": g["model"].first(), "periods": g.size(), "forecast total": g["yhat"].sum(),
                         "mean 80% width": g["width80"].mean(), "mean 95% width": g["width95"].mean()}).reset_index()


def demand_section(store: Store, figs: Figures) -> Section:
    """The newest stored forecasts: backtest leaderboard and coverage, a few series with their intervals."""
    from custscore.forecast.plot import plot_forecasts
    from custscore.forecast.production import history_of, read_forecasts

    s = Section("demand", "Demand forecasts")
    try:
        frame = read_forecasts(store)
    except CustscoreError:
        return s.empty(f"No demand forecasts stored yet: {TRAIN_DEMAND} to fill this section.")
    version = str(frame["version"].iloc[0])
    s.add(paragraph(f"Forecasts {version}: {frame['key'].nunique():,} series by {'+'.join(frame['by'].iloc[0]) or 'total'} "
                    f"at frequency {frame['freq'].iloc[0]}, {frame['period'].nunique()} periods ahead of "
                    f"{pd.Timestamp(frame['as_of'].iloc[0]):%Y-%m-%d}; models used: "
                    f"{', '.join(sorted(frame['model'].astype(str).unique()))}."))
    s.parts += backtest_parts(store, version)
    keys = largest_series(frame)
    shown = frame[frame["key"].isin(keys)]
    history = history_of(store, shown)
    path = plot_forecasts(history, shown, figs.out_dir / "demand_forecasts_source.png", max_series=SHOWN_SERIES)
    title = f"Recent history and forecast with 80% and 95% intervals of the {len(keys)} largest series"
    s.add(figs.embed(path, "demand_forecasts", title))
    path.unlink(missing_ok=True)
    s.add(heading("The plotted series") + table(_summary(shown)))
    return s


BACKTEST_HEADERS = {"model": "model", "mase": "MASE", "wape": "WAPE", "smape": "sMAPE", "bias": "bias",
                    "cov80": "80% coverage", "cov95": "95% coverage", "series_per_s": "series/s"}


def backtest_parts(store: Store, version: str) -> list[str]:
    """The stored backtest leaderboard and interval coverage of a forecasts version (from the model registry)."""
    from custscore.forecast.production import stored_backtest
    from custscore.models.registry import is_winner

    record = stored_backtest(store, version)
    extra = (record or {}).get("extra") or {}
    board = pd.DataFrame(extra.get("leaderboard") or [])
    if board.empty:
        return [paragraph(f"No backtest leaderboard stored with {version}; {TRAIN_DEMAND} prints it.", "note")]
    winner = extra.get("winner")
    marked = board["model"].astype(str).map(lambda m: is_winner(m, winner) or (winner == "per-series" and m.startswith("chosen")))
    shown = board[[c for c in BACKTEST_HEADERS if c in board.columns]].copy()
    shown["model"] = [f"{m} {WINNER}" if w else str(m) for m, w in zip(shown["model"], marked, strict=True)]
    parts = [heading(f"Backtest leaderboard ({extra.get('windows')} rolling-origin windows of {extra.get('horizon')} "
                     f"periods; lower MASE is better)"),
             table(shown.rename(columns=BACKTEST_HEADERS), marked=marked.reset_index(drop=True)),
             paragraph(f"Rule: {extra.get('rule')}. Registered as demand {record['version']}.", "muted")]
    row = board[marked.to_numpy()].iloc[0]
    naive = board[board["model"] == "seasonal_naive"]
    versus = "" if naive.empty or row["model"] == "seasonal_naive" else \
        f"; its MASE is {1 - row['mase'] / naive['mase'].iloc[0]:.0%} below seasonal naive's"
    parts.append(paragraph(f"Interval coverage in the backtest: the chosen model's 80% intervals held {row['cov80']:.0%} "
                           f"of the actuals and its 95% intervals {row['cov95']:.0%} (well calibrated: about 80% and "
                           f"95%){versus}."))
    return parts
