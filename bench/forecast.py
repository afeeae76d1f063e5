"""Benchmark: series per second and MASE per forecasting family, against the sources' SARIMAX loop.

Usage::

    python bench/forecast.py                 # 2,000 simulated product x store series, 12 for the slow loops
    python bench/forecast.py N SAMPLE        # N series; per-series loops timed on SAMPLE of them
    python bench/forecast.py --load HOME     # series loading from HOME's store: the old pipeline against load_panel

Each family fits on two years of daily history and forecasts the 28 held-out days.
Fast families (seasonal naive, TSB, the global boosted model) run on all N series;
the per-series model loops (ETS, AutoARIMA, and the sources' one statsmodels
SARIMAX(1,1,1)(1,1,1,7) fit per series with its moving-average fallback) run on
the first SAMPLE series. Every family is also scored on that same sample, so the
MASE column compares like with like. Speed-up = series/s of a family over the
SARIMAX loop's series/s in this run. Memory: tracemalloc peak of the family's
run (Python and numpy allocations; numba's compiled code is not counted).

``--load HOME`` times reading demand series from the events of an existing
store (e.g. the demo's: ``custscore --home HOME simulate --customers 20000
--seed 7``), by category and by product x store: the pipeline of the previous
release (``$ifNull`` inside ``$group`` and a ``$ne: None`` match, which send every
event through mongomock's expression and filter engines on the embedded store)
against :func:`~custscore.forecast.series.load_panel` (plain paths: the store's
hash-based ``$group``), alternating, best of 2 each; ratio = old / new seconds.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from custscore.forecast.backtest import context_at
from custscore.forecast.families import FAMILIES, make_family, statsforecast_available
from custscore.forecast.metrics import mase, naive_scale
from custscore.forecast.series import from_frame
from custscore.simulator.stores import DemandConfig, simulate_demand

H = 28
SLOW = ("ets", "arima", "sarimax")


def _mase(panel, origin, fc, rows):
    return float(np.mean([mase(panel.y[i, origin:origin + H], fc.mean[j],
                               naive_scale(panel.y[i, int(panel.start[i]):origin], panel.season))
                          for j, i in enumerate(rows)]))


def old_pipeline(by: tuple[str, ...]) -> list[dict]:
    """The series pipeline before this release (the baseline of ``--load``)."""
    key = {f.replace("_", ""): f"${f}" for f in by} | {"y": {"$year": "$ts"}, "m": {"$month": "$ts"},
                                                         "d": {"$dayOfMonth": "$ts"}}
    return [{"$match": {f: {"$ne": None} for f in by}},
            {"$group": {"_id": key, "units": {"$sum": {"$ifNull": ["$quantity", 1]}},
                        "promo": {"$max": {"$ifNull": ["$promo", False]}}}}]


def bench_load(home: Path) -> None:
    from custscore.config import Settings
    from custscore.forecast.series import load_panel, parse_by
    from custscore.store import open_store
    from custscore.store.schema import EVENTS

    with open_store(Settings.build(home=home, environ={})) as store:
        print(f"{store.collection(EVENTS).count():,} events in {home}")
        for by in ("category", "product,store"):
            best = {"old": float("inf"), "new": float("inf")}
            for _ in range(2):
                for which in best:
                    started = time.perf_counter()
                    if which == "old":
                        groups = len(store.collection(EVENTS).aggregate(old_pipeline(parse_by(by))))
                    else:
                        panel = load_panel(store, by, "D")
                    best[which] = min(best[which], time.perf_counter() - started)
            print(f"  by {by:14s} old pipeline {best['old']:6.1f} s ({groups:,} groups)   load_panel {best['new']:6.1f} s "
                  f"({len(panel.keys):,} series x {len(panel.periods)} days)   x{best['old'] / best['new']:.1f}", flush=True)


def main(argv: list[str]) -> None:
    if len(argv) > 2 and argv[1] == "--load":
        bench_load(Path(argv[2]))
        return
    n = int(argv[1]) if len(argv) > 1 else 2000
    sample = int(argv[2]) if len(argv) > 2 else 12
    stores = max(1, n // 100 - 1)
    data = simulate_demand(DemandConfig(n_products=max(1, n // (stores + 1)), n_stores=stores, seed=11))
    panel = from_frame(data.sales, ("product_id", "store_id"), "D")
    n = len(panel.keys)
    origin = len(panel.periods) - H
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    small = panel.select([panel.keys[i] for i in rows])
    print(f"{n:,} series x {len(panel.periods)} days; horizon {H}; slow loops on {len(rows)} series")
    families = [f for f in FAMILIES if statsforecast_available() or f not in ("ets", "arima", "tsb")]
    results = {}
    for name in families:
        target = small if name in SLOW else panel
        ctx = context_at(target, origin, H)
        model = make_family(name)
        if name in ("tsb", "ets", "arima"):  # numba compiles on first use: warm up outside the timing
            warm = context_at(small.select(small.keys[:1]), origin, H)
            model.forecast(warm)
        tracemalloc.start()
        started = time.perf_counter()
        fc = model.forecast(ctx)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if target is panel:
            score = _mase(panel, origin, type(fc)(*(a[rows] for a in (fc.mean, fc.lo80, fc.hi80, fc.lo95, fc.hi95))), rows)
        else:
            score = _mase(panel, origin, fc, rows)
        results[name] = (len(target.keys) / seconds, score, peak / 2**20, fc.used_fallback, len(target.keys))
        print(f"  {name:15s} {results[name][0]:10.3g} series/s  MASE {score:.3f}  peak {results[name][2]:7.1f} MiB"
              f"  ({results[name][4]} series, {fc.used_fallback} fallbacks)", flush=True)
    base = results["sarimax"][0]
    print("\nspeed-up over the sources' SARIMAX loop (series/s ratio), and MASE on the same sample:")
    for name, (sps, score, *_rest) in results.items():
        print(f"  {name:15s} x{sps / base:9.1f}   MASE {score:.3f} (SARIMAX loop {results['sarimax'][1]:.3f})")


if __name__ == "__main__":
    main(sys.argv)
