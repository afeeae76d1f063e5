"""Benchmark: the batch scorer against its compute ceiling, a naive per-document scorer, and streaming latency.

Usage::

    python bench/score.py            # simulate 5,000 customers, train (fast families), score 2,000 of them
    python bench/score.py N M        # simulate N customers, score M

Everything runs in one process on one embedded store, so the ratios compare like with like:

* ceiling: the same production models computing features, predicting and explaining the same
  customers in memory (documents and events already loaded, no store reads or writes);
* end-to-end: ``Worker.run_once`` on those customers: change feed, reads, features, predictions,
  SHAP, one bulk write per batch, prediction records, tokens;
* naive: what tutorials do - per customer, load the model, predict one row, explain one row,
  update one document;
* streaming: a writer inserts new customers at a fixed rate while a worker thread follows the
  feed; latency is the document's arrival (``updated_at``) to its written score.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from custscore.config import Settings
from custscore.models import features as F
from custscore.models.predict import load_production, production_versions
from custscore.models.train import TrainOptions, train
from custscore.scorer.worker import Worker
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import StreamWriter, run_simulation
from custscore.store import open_store

SEED = 7
NAIVE_ROWS = 40
STREAM_SECONDS = 20.0
STREAM_RATE = 10.0  # new customers per second (plus purchases by existing ones)


def _unscore(store, ids):
    store["customers"].update_many({"_id": {"$in": ids}}, {"$unset": {"score": ""}})
    store["predictions"].delete_many({})


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 5_000
    m = int(argv[2]) if len(argv) > 2 else 2_000
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings.build(mongo_uri=f"embedded:{home / 'store.sqlite'}", home=home, environ={})
        store = open_store(settings)
        run_simulation(store, SimulationConfig(n_customers=n, seed=SEED))
        train(store, settings, TrainOptions(cv=2, families=("linear", "xgboost"), seed=SEED))
        models = load_production(store, settings)
        print(f"models: {models.versions}")
        ids = [d["_id"] for d in store["customers"].find({}, projection={"_id": 1}, limit=m)]

        # ceiling: features + predict + SHAP on the same rows, inputs already in memory
        docs = F.load_customers(store, ids)
        events = F.load_events(store, ids)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        for i in range(0, len(docs), 256):
            models.score_documents(docs[i:i + 256], events[events["customer_id"].isin(set(ids[i:i + 256]))], now)
        ceiling = len(docs) / (time.perf_counter() - t0)

        # end-to-end: the worker drains the backlog of the same customers (others already scored)
        others = [d["_id"] for d in store["customers"].find({"_id": {"$nin": ids}}, projection={"_id": 1})]
        worker = Worker(store, lambda s: load_production(s, settings), production_versions, batch_size=256)
        worker.run_once()  # scores everyone once (warm-up), then we rescore the m customers
        _unscore(store, ids)
        t0 = time.perf_counter()
        stats = Worker(store, lambda s: models, production_versions, batch_size=256).run_once()
        e2e = stats.scored / (time.perf_counter() - t0)
        assert stats.scored >= len(ids), (stats.scored, len(ids))
        del others

        # naive: load, predict one, explain one, update one - per customer
        sample = ids[:NAIVE_ROWS]
        t0 = time.perf_counter()
        for cid in sample:
            naive_models = load_production(store, settings)
            [one] = naive_models.score_batch(store, F.load_customers(store, [cid]), now)
            store["customers"].update_one({"_id": cid}, {"$set": {"score": one.score}})
        naive = len(sample) / (time.perf_counter() - t0)

        print(f"ceiling (in memory, features+predict+SHAP): {ceiling:,.0f} customers/s")
        print(f"end-to-end worker (feed, reads, SHAP, bulk write): {e2e:,.0f} customers/s")
        print(f"naive per-document scorer: {naive:,.1f} customers/s")
        print(f"end-to-end / ceiling = {e2e / ceiling:.2f}   speed-up over naive = {e2e / naive:.0f}x")

        # streaming latency at a fixed insert rate
        stop = threading.Event()

        def follow():
            with open_store(settings) as wstore:
                Worker(wstore, lambda s: load_production(s, settings), production_versions, batch_size=256,
                       max_wait_ms=200).run(stop)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        writer = StreamWriter(open_store(settings), seed=SEED, rate=STREAM_RATE)
        start = time.monotonic()
        first_new = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        while time.monotonic() - start < STREAM_SECONDS:
            writer.tick(0.5)
            stop.wait(0.5)
        deadline = time.monotonic() + 30
        new_ids = [d["_id"] for d in store["customers"].find({"signup_date": {"$gte": first_new}},
                                                              projection={"_id": 1})]
        while time.monotonic() < deadline:
            if store["customers"].count({"_id": {"$in": new_ids}, "score.latency_ms": {"$exists": True}}) >= len(new_ids):
                break
            stop.wait(0.2)
        stop.set()
        thread.join()
        lat = sorted(d["score"]["latency_ms"] for d in store["customers"].find(
            {"_id": {"$in": new_ids}, "score.latency_ms": {"$exists": True}}, projection={"score.latency_ms": 1}))
        if lat:
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            print(f"streaming at {STREAM_RATE:.0f} new customers/s for {STREAM_SECONDS:.0f} s: {len(lat)} scored, "
                  f"latency p50 {statistics.median(lat):,.0f} ms, p99 {p99:,.0f} ms")
        store.close()


if __name__ == "__main__":
    main(sys.argv)
