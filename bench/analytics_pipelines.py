"""Benchmark: each named pipeline on the store vs the same statistic in pandas.

Usage::

    python bench/analytics_pipelines.py                # simulate 20k customers into a temp embedded store
    python bench/analytics_pipelines.py N              # simulate N customers instead
    python bench/analytics_pipelines.py PATH.sqlite    # use an existing embedded store (read only)
    python bench/analytics_pipelines.py PATH.sqlite rfm top_products   # only these pipelines

The pandas side starts from documents already in memory (``find()`` into
lists, then flat frames, timed once and shown separately) and uses the
independent references of tests/analytics/test_pipelines.py. Prints seconds
per pipeline on the store and in pandas, and the ratio store / pandas.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the pandas references live in the test suite

from custscore.analytics.pipelines import list_pipelines, run_pipeline  # noqa: E402
from custscore.config import Settings  # noqa: E402
from custscore.simulator.generate import SimulationConfig  # noqa: E402
from custscore.simulator.run import run_simulation  # noqa: E402
from custscore.store import open_store  # noqa: E402
from tests.analytics.test_pipelines import REFERENCE, frames  # noqa: E402

N_DEFAULT = 20_000
SEED = 7


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        arg = argv[1] if len(argv) > 1 else str(N_DEFAULT)
        only = set(argv[2:])
        if arg.isdigit():
            store = open_store(Settings.build(mongo_uri=f"embedded:{home / 'store.sqlite'}", home=home, environ={}))
            sim, seconds = timed(run_simulation, store, SimulationConfig(int(arg), seed=SEED, end=dt.datetime(2026, 6, 30),
                                                                         missing_rate=0.05))
            print(f"simulated {sim.customers} customers, {sim.events} events in {seconds:.1f}s")
        else:
            store = open_store(Settings.build(mongo_uri=f"embedded:{arg}", home=home, environ={}))
        (customers, events), load = timed(lambda: (list(store["customers"].find()), list(store["events"].find())))
        (cdf, edf), build = timed(frames, customers, events)
        print(f"{len(customers)} customers, {len(events)} events; find() into lists {load:.2f}s, "
              f"lists -> pandas frames {build:.2f}s (not counted below)\n")
        print(f"{'pipeline':<34}{'store s':>10}{'pandas s':>10}{'ratio':>9}{'rows':>7}")
        for info in list_pipelines():
            if only and info.name not in only:
                continue
            for by in info.by or (None,):
                frame, store_s = timed(run_pipeline, store, info.name, by=by)
                _, pandas_s = timed(REFERENCE[info.name], cdf, edf, by=by)
                label = info.name + (f" by={by}" if by else "")
                print(f"{label:<34}{store_s:>10.2f}{pandas_s:>10.3f}{store_s / pandas_s:>9.0f}{len(frame):>7}",
                      flush=True)
        store.close()


if __name__ == "__main__":
    main(sys.argv)
