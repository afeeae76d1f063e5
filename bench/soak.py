"""Soak: SIGKILL the scorer worker and the simulate writer again and again, then count what went wrong.

    python bench/soak.py [--kills 10]

Worker: a worker process (tests/scorer/crash_worker.py, fake models that sleep
between scoring and writing) follows an embedded store while new customers and
purchases stream in; it is killed with SIGKILL in the middle of a batch, restarted,
killed again, ``--kills`` times; then one last worker drains the backlog. Counted:
lost = customers without a score, stale = a score computed from an older input
than the customer's current document and events, duplicated = more than one
prediction record for one (customer, input).

Writer: ``custscore simulate`` is killed with SIGKILL mid-run ``--kills`` times,
each time on a fresh store. Counted: partial batches (customers not a whole
number of batches), orphan events (an event whose customer is not stored) and
purchase-history mismatches (orders in purchase_history != stored events).

It prints counts, not asserts; the README quotes its figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custscore.config import Settings  # noqa: E402
from custscore.scorer.worker import Worker  # noqa: E402
from custscore.store import open_store  # noqa: E402
from custscore.store.schema import CUSTOMERS, EVENTS, PREDICTIONS  # noqa: E402
from tests.scorer.fakes import FakeRegistry, event_counts, input_version, open_embedded, simulate  # noqa: E402
from tests.scorer.test_crash import Stream  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CUSTSCORE_MONGO_URI": ""}
ROUND_LIMIT_S = 120  # a round that has not reached its kill point by then is reported, not waited for


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def soak_worker(kills: int, work: Path) -> dict:
    """Kill a streaming worker mid-batch ``kills`` times, then drain; return the counts."""
    path, marker = work / "worker.sqlite", work / "in-flight"
    store = open_embedded(path)
    stream = Stream(store, simulate(store, 40))
    killed = 0
    for round_ in range(kills):
        marker.unlink(missing_ok=True)
        before = store.collection(PREDICTIONS).count()
        with (work / f"worker-{round_}.log").open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "tests.scorer.crash_worker", str(path), str(marker), "0.2"],
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=ENV)
            deadline = time.monotonic() + ROUND_LIMIT_S
            try:
                # stream until this worker has written something and is in the middle of another batch
                while not (store.collection(PREDICTIONS).count() > before and marker.exists()):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        break
                    stream.tick()
                    time.sleep(0.02)
            finally:
                if proc.poll() is None:
                    _kill(proc)
                    killed += proc.returncode == -signal.SIGKILL
        for _ in range(3):  # more arrives while no worker runs
            stream.tick()
    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe, batch_size=32).run_once()
    docs = list(store.collection(CUSTOMERS).find({}))
    counts = event_counts(store, [d["_id"] for d in docs])
    keys = Counter((p["customer_id"], p["input_version"]) for p in store.collection(PREDICTIONS).find({}))
    lost = sum(1 for d in docs if not isinstance(d.get("score"), dict))
    stale = sum(1 for d in docs if isinstance(d.get("score"), dict)
                and d["score"].get("input_version") != input_version(d, counts[d["_id"]]))
    store.close()
    return {"kills": killed, "customers": len(docs), "lost": lost,
            "duplicated": sum(n - 1 for n in keys.values() if n > 1), "stale": stale}


def soak_writer(kills: int, work: Path, batch: int = 1000) -> dict:
    """Kill ``custscore simulate`` mid-run ``kills`` times (fresh store each time); return the counts."""
    totals = Counter()
    for round_ in range(kills):
        home = work / f"writer-{round_}"
        settings = Settings.build(home=home, environ={})
        proc = subprocess.Popen([sys.executable, "-m", "custscore", "--home", str(home), "simulate", "--customers",
                                 "40000", "--batch-size", str(batch), "--seed", str(round_)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        store = None
        deadline = time.monotonic() + ROUND_LIMIT_S
        target = batch * (2 + round_ % 5)  # kill at a different point each round
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if (home / "store.sqlite").exists():
                    store = store or open_store(settings)
                    if store.collection(CUSTOMERS).count() >= target:
                        break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                _kill(proc)
                totals["kills"] += proc.returncode == -signal.SIGKILL
        store = store or open_store(settings)
        customers = {d["_id"]: d for d in store.collection(CUSTOMERS).find({}, {"purchase_history": 1})}
        per_customer = Counter(e["customer_id"] for e in store.collection(EVENTS).find({}, {"customer_id": 1}))
        totals["customers"] += len(customers)
        totals["partial_batches"] += len(customers) % batch != 0
        totals["orphan_events"] += sum(n for cid, n in per_customer.items() if cid not in customers)
        totals["history_mismatches"] += sum(1 for cid, d in customers.items()
                                            if (d.get("purchase_history") or {}).get("orders", 0) != per_customer[cid])
        store.close()
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="custscore-soak-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        w = soak_worker(args.kills, work)
        print(f"worker: {w['kills']} SIGKILLs mid-batch, {w['customers']:,} customers after the restart: "
              f"lost {w['lost']}, duplicated {w['duplicated']}, stale {w['stale']}")
        r = soak_writer(args.kills, work)
        print(f"writer: {r['kills']} SIGKILLs of simulate mid-run, {r['customers']:,} customers kept: "
              f"partial batches {r['partial_batches']}, orphan events {r['orphan_events']}, "
              f"purchase-history mismatches {r['history_mismatches']}")
        print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
