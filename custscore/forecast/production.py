"""Train demand forecasts: backtest, choose, forecast from the latest period and write ``forecasts``.

One run = one version ``demand-<by>-<freq>-<as_of date>``. Documents have
``_id = version|key|period`` and a re-run of the same version first deletes
that version's documents, so re-runs are idempotent (same documents, no
duplicates). Each document: ``key``, ``by``, ``freq``, ``period``, ``yhat``,
``lo80``, ``hi80``, ``lo95``, ``hi95``, ``model``, ``version``, ``as_of``,
``created_at``.

With settings, a run is also registered in the model registry as task
``demand`` (kind ``forecast``, not promoted: the newest forecasts are what
``forecast`` and ``stockouts`` read): the backtest leaderboard, the winner,
the rule, the per-series choice as the artifact, and ``extra.forecast_version``
naming the forecasts version, which :func:`stored_backtest` reads back (the
report's demand section uses it).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from custscore.config import Settings
from custscore.errors import InputError
from custscore.forecast.backtest import BacktestResult, context_at, run_backtest
from custscore.forecast.families import Forecast, default_families, make_family
from custscore.forecast.series import KEY_SEP, Panel, check_freq, load_panel, parse_by
from custscore.store.base import Store
from custscore.store.schema import FORECASTS, MODELS

log = logging.getLogger(__name__)

DEFAULT_HORIZON = {"D": 28, "W": 8, "M": 3}
TASK, KIND = "demand", "forecast"
METRICS = ("mase", "wape", "smape", "bias", "cov80", "cov95")


@dataclass(frozen=True)
class DemandOptions:
    """What ``train --task demand`` does."""

    by: str = "category"
    freq: str = "D"
    horizon: int | None = None  # default per frequency: 28 days, 8 weeks, 3 months
    windows: int = 3
    families: Sequence[str] | None = None  # default: families.default_families()
    select: str = "global"
    as_of: dt.datetime | None = None
    clip: bool = True


@dataclass
class DemandResult:
    """A demand training run: the backtest, what was written and how long it took."""

    backtest: BacktestResult
    version: str
    as_of: dt.datetime
    series: int
    written: int
    seconds: float
    freq: str
    by: tuple[str, ...]
    registered: str | None = None  # the registry version of the run (when trained with settings)
    kind: str = KIND  # what a UI dispatches on, as the kind of the other tasks' results


def horizon_for(freq: str, horizon: int | None) -> int:
    """The horizon to use (the frequency's default when ``None``)."""
    h = DEFAULT_HORIZON[check_freq(freq)] if horizon is None else int(horizon)
    if h < 1:
        raise InputError(f"--horizon must be >= 1 period, got {h}")
    return h


def forecast_panel(panel: Panel, choice: dict[str, str], horizon: int, clip: bool = True) -> dict[str, Forecast]:
    """Fit each chosen family on the whole history and forecast ``horizon`` periods after it."""
    out = {}
    for family in dict.fromkeys(choice.values()):
        keys = [k for k in panel.keys if choice.get(k) == family]
        sub = panel.select(keys)
        out[family] = (keys, make_family(family).forecast(context_at(sub, len(sub.periods), horizon, clip)))
    return out


def forecast_documents(panel: Panel, forecasts: dict, version: str, as_of: dt.datetime, horizon: int) -> list[dict]:
    """The ``forecasts`` documents of one run."""
    future = context_at(panel.select(panel.keys[:1]), len(panel.periods), horizon, clip=False).future_periods
    created = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    docs = []
    for family, (keys, fc) in forecasts.items():
        for i, key in enumerate(keys):
            for j, period in enumerate(future):
                p = period.to_pydatetime()
                docs.append({"_id": f"{version}|{key}|{p:%Y-%m-%d}", "key": key, "by": list(panel.by), "freq": panel.freq,
                             "period": p, "yhat": round(float(fc.mean[i, j]), 4), "lo80": round(float(fc.lo80[i, j]), 4),
                             "hi80": round(float(fc.hi80[i, j]), 4), "lo95": round(float(fc.lo95[i, j]), 4),
                             "hi95": round(float(fc.hi95[i, j]), 4), "model": family, "version": version,
                             "as_of": as_of, "created_at": created})
    return docs


def write_forecasts(store: Store, version: str, docs: list[dict]) -> int:
    """Replace one version's documents (idempotent)."""
    coll = store.collection(FORECASTS)
    with store.transaction():
        coll.delete_many({"version": version})
        for lo in range(0, len(docs), 5000):
            coll.insert_many(docs[lo:lo + 5000])
    return len(docs)


def train_demand(store: Store, options: DemandOptions | None = None,
                 on_family: Callable[[str], None] | None = None, settings: Settings | None = None) -> DemandResult:
    """Build demand series from events, backtest the families, choose, forecast and store.

    Parameters
    ----------
    store : Store
        Events are read from it and forecasts written to it.
    options : DemandOptions
        Key fields, frequency, horizon, windows, families and selection rule.
    on_family : callable or None
        Called with each family name as its backtest starts (progress).
    settings : Settings or None
        When given, the run is registered in the model registry (see the module docstring).

    Returns
    -------
    DemandResult
    """
    options = options or DemandOptions()
    started = time.perf_counter()
    by, freq = parse_by(options.by), check_freq(options.freq)
    horizon = horizon_for(freq, options.horizon)
    panel = load_panel(store, by, freq, as_of=options.as_of)
    result = run_backtest(panel, options.families or default_families(), horizon, options.windows, options.select, options.clip,
                          oracle=False, on_family=on_family)
    as_of = options.as_of or (panel.periods[-1] + pd.tseries.frequencies.to_offset(
        {"D": "D", "W": "W-MON", "M": "MS"}[freq]) - pd.Timedelta(seconds=1)).to_pydatetime()
    version = f"demand-{'+'.join(f.removesuffix('_id') for f in by) or 'total'}-{freq}-{as_of:%Y%m%d}"
    forecasts = forecast_panel(panel, result.choice, horizon, options.clip)
    written = write_forecasts(store, version, forecast_documents(panel, forecasts, version, as_of, horizon))
    out = DemandResult(result, version, as_of, len(panel.keys), written, time.perf_counter() - started, freq, by)
    if settings is not None:
        out.registered = register_run(store, settings, out, panel, options)
    out.seconds = time.perf_counter() - started
    log.info("demand %s: %d series, %d forecasts in %.1fs", version, len(panel.keys), written, out.seconds)
    return out


def _plain(value: object) -> object:
    """JSON-friendly numbers: floats rounded, NaN as None."""
    if isinstance(value, float | np.floating):
        return None if value != value else round(float(value), 6)
    return value


def register_run(store: Store, settings: Settings, result: DemandResult, panel: Panel, options: DemandOptions) -> str:
    """Record a demand run in the model registry (task ``demand``, not promoted); return its registry version."""
    from custscore.models import registry

    bt = result.backtest
    board = [{k: _plain(v) for k, v in row.items()} for row in bt.leaderboard.to_dict("records")]
    chosen = next(r for r in board if registry.is_winner(str(r["model"]), bt.winner)
                  or (bt.winner == "per-series" and str(r["model"]).startswith("chosen")))
    extra = {"winner": bt.winner, "rule": bt.rule, "leaderboard": board, "forecast_version": result.version,
             "by": list(result.by), "freq": result.freq, "horizon": bt.horizon, "windows": len(bt.windows),
             "series": result.series, "as_of": result.as_of.isoformat(),
             "notes": [f"{len(bt.windows)} rolling-origin windows of {bt.horizon} x {result.freq}; rule: {bt.rule}"]}
    metrics = {k: chosen[k] for k in METRICS if chosen.get(k) is not None}
    artifact = {"by": list(result.by), "freq": result.freq, "horizon": bt.horizon, "clip": options.clip,
                "choice": dict(bt.choice)}
    fingerprint = registry.training_fingerprint(pd.DataFrame(panel.y, index=panel.keys, columns=panel.periods.astype(str)))
    return registry.save_model(store, settings, TASK, artifact, kind=KIND, features=[], metrics=metrics,
                               training_fingerprint=fingerprint, extra=extra, promote=False)


def stored_backtest(store: Store, version: str) -> dict | None:
    """The registry record of the run that wrote forecasts ``version`` (newest first), or None.

    The record holds ``extra.leaderboard`` (rows with model, mase, wape, smape, bias, cov80, cov95,
    seconds, series_per_s), ``extra.winner``, ``extra.rule``, ``extra.windows`` and ``extra.horizon``.
    """
    docs = list(store.collection(MODELS).find({"task": TASK, "extra.forecast_version": version}))
    return max(docs, key=lambda d: (str(d.get("created_at")), d["version"])) if docs else None


def latest_version(store: Store) -> str | None:
    """The version of the most recently written forecasts."""
    docs = list(store.collection(FORECASTS).find({}, {"version": 1, "created_at": 1}))
    if not docs:
        return None
    return max(docs, key=lambda d: (d.get("created_at") or dt.datetime.min, d["version"]))["version"]


def read_forecasts(store: Store, version: str | None = None, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Forecast documents of a version (default: the latest) as a frame sorted by key and period."""
    version = version or latest_version(store)
    if version is None:
        raise InputError("no forecasts stored yet; run: custscore train --task demand")
    filt: dict = {"version": version}
    if keys:
        filt["key"] = {"$in": list(keys)}
    docs = list(store.collection(FORECASTS).find(filt))
    if not docs:
        if keys:
            raise InputError(f"--key {keys[0]!r} has no forecasts in {version}; keys look like "
                             f"{_example_key(store, version)}")
        raise InputError(f"version {version!r} has no forecasts; run: custscore train --task demand")
    return pd.DataFrame(docs).drop(columns=["_id"]).sort_values(["key", "period"]).reset_index(drop=True)


def _example_key(store: Store, version: str) -> str:
    doc = store.collection(FORECASTS).find_one({"version": version}, {"key": 1})
    return repr(doc["key"]) if doc else "(none)"


def history_of(store: Store, frame: pd.DataFrame, periods: int = 90) -> Panel:
    """The recent history of the series in a forecasts frame, from the events."""
    by, freq = tuple(frame["by"].iloc[0]), frame["freq"].iloc[0]
    panel = load_panel(store, by, freq, as_of=frame["as_of"].iloc[0])
    keys = list(dict.fromkeys(frame["key"]))
    sub = panel.select(keys)
    cut = max(len(sub.periods) - periods, 0)
    return Panel(sub.keys, sub.periods[cut:], sub.y[:, cut:], sub.promo[:, cut:], sub.freq, sub.by,
                 np.maximum(sub.start - cut, 0))


def split_key(key: str) -> list[str]:
    """``"books-0003|ST002"`` -> ``["books-0003", "ST002"]``."""
    return key.split(KEY_SEP)
