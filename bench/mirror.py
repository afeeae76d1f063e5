"""Benchmark: full SQLite mirror (with every pipeline's stats table) vs an incremental one after 1% of
customers changed (the stats that read customers are recomputed, those on events kept) vs a run with
nothing changed (nothing copied, no pipeline run).

Usage::

    python bench/mirror.py                 # simulate 20k customers into a temp embedded store
    python bench/mirror.py N               # simulate N customers instead
    python bench/mirror.py PATH.sqlite     # use an existing embedded store (it is modified: 1% updated)

Prints seconds for the three runs and the ratios full / incremental and full / no-change.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from custscore.analytics.pipelines import stats_tables
from custscore.config import Settings
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import UpdateOne, open_store
from custscore.store.mirror import mirror

N_DEFAULT = 20_000
SEED = 7
UPDATED_SHARE = 0.01


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        arg = argv[1] if len(argv) > 1 else str(N_DEFAULT)
        if arg.isdigit():
            settings = Settings.build(mongo_uri=f"embedded:{home / 'store.sqlite'}", home=home, environ={})
            store = open_store(settings)
            t0 = time.perf_counter()
            sim = run_simulation(store, SimulationConfig(int(arg), seed=SEED, end=dt.datetime(2026, 6, 30)))
            print(f"simulated {sim.customers} customers, {sim.events} events in {time.perf_counter() - t0:.1f}s")
        else:
            store = open_store(Settings.build(mongo_uri=f"embedded:{arg}", home=home, environ={}))
        path = home / "mirror.sqlite"
        customers = store["customers"].count()
        events = store["events"].count()

        stats = stats_tables(store)
        full = mirror(store, path, stats=stats, full=True)
        print(f"full mirror:        {full.seconds:8.2f}s  ({full.rows} rows: {customers} customers, {events} events, "
              f"{len(full.refreshed)} stats tables)")

        ids = [d["_id"] for d in store["customers"].find({}, {"_id": 1})]
        rng = np.random.default_rng(SEED)
        chosen = rng.choice(len(ids), size=max(1, int(len(ids) * UPDATED_SHARE)), replace=False)
        now = dt.datetime(2026, 7, 1)
        store["customers"].bulk_write(
            [UpdateOne({"_id": ids[i]}, {"$set": {"support_tickets": 1, "updated_at": now}}) for i in chosen]
        )
        inc = mirror(store, path, stats=stats)
        print(f"incremental mirror: {inc.seconds:8.2f}s  ({inc.rows} rows after updating {len(chosen)} customers; "
              f"{len(inc.refreshed)} stats tables recomputed, {len(inc.kept)} kept)")
        print(f"ratio full / incremental: {full.seconds / inc.seconds:.1f}x")
        again = mirror(store, path, stats=stats)
        print(f"no-change mirror:   {again.seconds:8.3f}s  ({again.rows} rows; {len(again.refreshed)} stats tables "
              f"recomputed, {len(again.kept)} kept)")
        print(f"ratio full / no-change: {full.seconds / again.seconds:.0f}x")
        print(f"mirror file: {path.stat().st_size / 1e6:.1f} MB")
        store.close()


if __name__ == "__main__":
    main(sys.argv)
