"""Rolling-origin backtest of forecasting families and the choice of one.

Windows: the last ``windows`` blocks of ``horizon`` periods, each forecast from
the history before it (origins ``T - w h`` for ``w = windows .. 1``). Every
family sees only :class:`~custscore.forecast.families.Context` cut at the
origin, with outliers clipped on that history alone.

Rule (stated in the leaderboard title): with ``select="global"`` the family
with the lowest mean backtest MASE over all series and windows serves every
series; with ``select="series"`` each series takes the family with its own
lowest mean MASE (the chosen row then reports those per-series picks). Ties go
to the earlier, simpler family in the list. The oracle row never competes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from custscore.errors import InputError
from custscore.forecast import metrics
from custscore.forecast.families import FAMILIES, Context, Forecast, Oracle, default_families, make_family
from custscore.forecast.series import Panel, clip_outliers, period_range

log = logging.getLogger(__name__)
SELECT_RULES = ("global", "series")


def context_at(panel: Panel, origin: int, horizon: int, clip: bool = True,
               future_promo: np.ndarray | None = None) -> Context:
    """What a forecaster may see at ``origin`` (history ``[:origin]``, planned promotions after it)."""
    y, promo = panel.y[:, :origin], panel.promo[:, :origin]
    start = np.minimum(panel.start, max(origin - 1, 0))
    if clip:
        y = clip_outliers(y, promo, start)
    if origin + horizon <= len(panel.periods):
        fut_periods = panel.periods[origin:origin + horizon]
        fut_promo = panel.promo[:, origin:origin + horizon]
        expected = None if panel.expected is None else panel.expected[:, origin:origin + horizon]
    else:
        fut_periods = period_range(panel.periods[origin - 1], horizon + 1, panel.freq)[1:]
        fut_promo = np.zeros((len(panel.keys), horizon), bool) if future_promo is None else future_promo
        expected = None
    return Context(y, promo, panel.periods[:origin], start, panel.freq, panel.season, fut_periods, fut_promo, expected)


@dataclass
class BacktestResult:
    """Leaderboard, per-series scores, the choice and the rule behind it."""

    leaderboard: pd.DataFrame
    per_series: pd.DataFrame
    winner: str
    choice: dict[str, str]
    rule: str
    windows: list[int] = field(default_factory=list)
    horizon: int = 0


def _score(panel: Panel, origin: int, horizon: int, fc: Forecast, family: str, window: int) -> list[dict]:
    rows = []
    for i, key in enumerate(panel.keys):
        if panel.start[i] >= origin:
            continue  # no history yet at this origin
        hist = panel.y[i, int(panel.start[i]):origin]
        y = panel.y[i, origin:origin + horizon]
        yhat = fc.mean[i]
        rows.append({"key": key, "family": family, "window": window,
                     "mase": metrics.mase(y, yhat, metrics.naive_scale(hist, panel.season)),
                     "abs_err": float(np.abs(yhat - y).sum()), "err": float((yhat - y).sum()), "actual": float(y.sum()),
                     "smape": metrics.smape(y, yhat),
                     "in80": float(((y >= fc.lo80[i]) & (y <= fc.hi80[i])).sum()),
                     "in95": float(((y >= fc.lo95[i]) & (y <= fc.hi95[i])).sum()), "n": len(y)})
    return rows


def _aggregate(per: pd.DataFrame) -> dict:
    actual = per["actual"].sum()
    return {"mase": per["mase"].mean(), "wape": per["abs_err"].sum() / actual if actual else np.nan,
            "smape": per["smape"].mean(), "bias": per["err"].sum() / actual if actual else np.nan,
            "cov80": per["in80"].sum() / per["n"].sum(), "cov95": per["in95"].sum() / per["n"].sum()}


def run_backtest(panel: Panel, families: Sequence[str] | None = None, horizon: int = 28, windows: int = 3,
                 select: str = "global", clip: bool = True, oracle: bool | None = None,
                 on_family: Callable[[str], None] | None = None) -> BacktestResult:
    """Backtest ``families`` on ``panel`` over rolling origins and choose by MASE.

    Parameters
    ----------
    panel : Panel
        The series.
    families : sequence of str
        Names from :data:`~custscore.forecast.families.FAMILIES`.
    horizon, windows : int
        Periods per window and number of windows (>= 3 recommended, >= 1 allowed).
    select : str
        ``"global"`` or ``"series"`` (see the module docstring).
    clip : bool
        Clip history outliers at each origin.
    oracle : bool or None
        Add the oracle row (default: when the panel carries simulated truth).

    Returns
    -------
    BacktestResult
    """
    families = tuple(families or default_families())
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise InputError(f"--families {unknown[0]!r} is not known; use some of {', '.join(FAMILIES)}")
    if select not in SELECT_RULES:
        raise InputError(f"--select {select!r} is not known; use global or series")
    if horizon < 1 or windows < 1:
        raise InputError(f"--horizon and --windows must be >= 1, got {horizon} and {windows}")
    T = len(panel.periods)
    need = horizon * windows + 2 * panel.season + 2
    if need > T:
        raise InputError(f"the series have {T} periods; a backtest of {windows} windows of --horizon {horizon} needs "
                         f"at least {need}; lower --horizon or --windows, or use a finer --freq")
    oracle = panel.expected is not None if oracle is None else oracle
    origins = [T - w * horizon for w in range(windows, 0, -1)]
    rows, timing = [], {}
    names = list(families) + (["oracle"] if oracle else [])
    for name in names:
        if on_family:
            on_family(name)
        model = Oracle() if name == "oracle" else make_family(name)
        started = time.perf_counter()
        for w, origin in enumerate(origins, start=1):
            fc = model.forecast(context_at(panel, origin, horizon, clip))
            rows.extend(_score(panel, origin, horizon, fc, name, w))
        timing[name] = time.perf_counter() - started
        log.info("backtest %s: %.1fs", name, timing[name])
    per = pd.DataFrame(rows)
    board = []
    for name in names:
        part = per[per["family"] == name]
        board.append({"model": name, **_aggregate(part), "seconds": timing[name],
                      "series_per_s": len(part) / timing[name] if timing[name] > 0 else np.nan})
    board = pd.DataFrame(board)
    contenders = board[board["model"] != "oracle"]
    winner = str(contenders.loc[contenders["mase"].idxmin(), "model"])
    keys = list(dict.fromkeys(per["key"]))
    if select == "global":
        choice = dict.fromkeys(keys, winner)
        rule = "global: the family with the lowest mean backtest MASE over all series and windows serves every series"
    else:
        means = per[per["family"] != "oracle"].groupby(["key", "family"])["mase"].mean().unstack()
        order = [f for f in families if f in means.columns]
        means = means[order]
        choice = {k: str(means.loc[k].idxmin()) for k in means.index}
        picked = per[[choice.get(k) == f for k, f in zip(per["key"], per["family"], strict=True)]]
        board = pd.concat([board, pd.DataFrame([{"model": "chosen (per series)", **_aggregate(picked),
                                                 "seconds": np.nan, "series_per_s": np.nan}])], ignore_index=True)
        rule = "series: each series takes the family with its own lowest mean backtest MASE"
        winner = "per-series"
    return BacktestResult(board, per, winner, choice, rule, origins, horizon)
