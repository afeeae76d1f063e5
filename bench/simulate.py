"""Simulator and embedded-store throughput, and the cost of _id lookups against a scan.

Usage: python bench/simulate.py [--customers 100000] [--lookup-docs 50000]

Prints rates and ratios measured in this process (machines here are noisy, so
compare ratios, not absolute seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from custscore.config import Settings
from custscore.simulator.generate import SimulationConfig, simulate
from custscore.simulator.run import run_simulation
from custscore.store import UpdateOne, open_store

END = dt.datetime(2026, 6, 30)


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--lookup-docs", type=int, default=50_000)
    args = parser.parse_args(argv)
    config = SimulationConfig(args.customers, seed=7, end=END)

    started = time.perf_counter()
    n_events = sum(len(b.events) for b in simulate(config))
    gen_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Settings.build(home=Path(tmp), environ={}))
        summary = run_simulation(store, config)
        ins_s = summary.seconds
        print(f"customers: {args.customers:,}  events: {n_events:,} ({n_events / args.customers:.1f} per customer)")
        print(f"generate in memory : {args.customers / gen_s:>10,.0f} customers/s {n_events / gen_s:>12,.0f} events/s ({gen_s:.1f}s)")
        print(f"generate + store   : {args.customers / ins_s:>10,.0f} customers/s {n_events / ins_s:>12,.0f} events/s ({ins_s:.1f}s)")
        print(f"ratio stored/in-memory rate: {gen_s / ins_s:.2f}")

        coll = store["lookup"]
        docs = [{"_id": f"K{i:07d}", "income": random.Random(i).random(), "n": 0} for i in range(args.lookup_docs)]
        coll.insert_many(docs)
        rng = random.Random(1)
        keys = [f"K{rng.randrange(args.lookup_docs):07d}" for _ in range(2000)]
        lookup_s = timed(lambda: [coll.find_one({"_id": k}) for k in keys]) / len(keys)
        scan_s = timed(lambda: coll.find_one({"income": -1.0}), repeat=3)
        batch = [UpdateOne({"_id": k}, {"$inc": {"n": 1}}) for k in keys[:1000]]
        update_s = timed(lambda: coll.bulk_write(batch), repeat=3)
        latest_s = timed(lambda: next(store["events"].find(sort=[("ts", -1)], limit=1)), repeat=3)
        print(f"\n{args.lookup_docs:,}-document embedded collection:")
        print(f"_id lookup             : {lookup_s * 1e3:8.3f} ms")
        print(f"full scan (no index)   : {scan_s * 1e3:8.1f} ms   -> lookup is {scan_s / lookup_s:,.0f}x faster than a scan")
        print(f"1000 updates by _id    : {update_s * 1e3:8.1f} ms per bulk_write ({update_s:.3f} ms per update)")
        print(f"latest event by ts index ({store['events'].count():,} events): {latest_s * 1e3:.2f} ms")
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
