"""Benchmark: recommender fit times, batched recommending against a tutorial-style loop, memory, scorer cost.

Usage::

    python bench/recommend.py          # 20,000 simulated customers (in memory, seed 7)
    python bench/recommend.py N        # N customers

Everything runs in one process on the same data, so the ratios compare like with like:

* fit: each ranker on every purchase (the weighted customer x product matrix);
* batched: ``Recommender.recommend`` (item-kNN winner) for 2,048 customers in batches of 256,
  histories built from the events frame, the buy-again rule and reasons included;
* brute force: what tutorials write - per customer, pivot the purchases into a dense
  customer x product table, compute the dense cosine between products, score, sort (recomputed
  per call, as a function ``recommend(customer_id)`` does); timed on a few customers;
* memory: the top-k sparse similarity against the dense product x product matrix;
* scorer: the added cost of recommendations per micro-batch of 256 (events frame + recommend),
  against the scorer's measured 240 customers/s end to end (README, about 1.07 s per batch).
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import numpy as np
import pandas as pd

from custscore.recommend import interactions as I
from custscore.recommend import rankers as R
from custscore.recommend.serving import Recommender
from custscore.simulator.generate import SimulationConfig, simulate

SEED = 7
END = dt.datetime(2026, 1, 1)
SCORER_BATCH_S = 256 / 240.0  # README: batch scorer end to end, 240 customers/s


def main(n: int) -> None:
    started = time.perf_counter()
    batches = list(simulate(SimulationConfig(n_customers=n, seed=SEED, end=END)))
    raw = [e for b in batches for e in b.events]
    profiles = {c["_id"]: c for b in batches for c in b.customers}
    events = I.events_frame(raw)
    inter = I.index_events(events)
    print(f"{n:,} customers, {len(events):,} purchases, {len(inter.items):,} products "
          f"(simulated in {time.perf_counter() - started:.1f} s)")
    X = inter.matrix()
    segs = np.array([I.segment_of(profiles[c]["age"], profiles[c]["channel"]) for c in inter.customers])
    fitted = {}
    print("\nfit on every purchase")
    for name, model in {"popularity-segment": R.Popularity(by_segment=True), "item-knn": R.ItemKNN(),
                        "user-knn": R.UserKNN(), "als": R.ALS(seed=0), "bpr": R.BPR(seed=0),
                        "pure-svd": R.PureSVD(seed=0)}.items():
        t = time.perf_counter()
        fitted[name] = model.fit(X, segs)
        print(f"  {name:20s} {time.perf_counter() - t:7.2f} s")
    rec = Recommender(fitted["item-knn"], fitted["item-knn"], fitted["popularity-segment"], inter.items,
                      inter.item_category, I.infer_repeatable(events))
    ids = list(inter.customers[:2048])
    seg_of = dict(zip(inter.customers.tolist(), segs.tolist(), strict=True))
    t, cpu = time.perf_counter(), time.process_time()
    for a in range(0, len(ids), 256):
        chunk = ids[a:a + 256]
        rec.recommend(chunk, events[events["customer_id"].isin(chunk)], seg_of, END)
    batched_ms = (time.perf_counter() - t) * 1000.0 / len(ids)
    batched_cpu = (time.process_time() - cpu) * 1000.0 / len(ids)

    def brute(cid: str) -> list[str]:
        table = pd.pivot_table(events, index="customer_id", columns="product_id", values="quantity",
                               aggfunc="count", fill_value=0)
        m = table.to_numpy(dtype=float)
        norms = np.linalg.norm(m, axis=0) + 1e-12
        sim = (m.T @ m) / np.outer(norms, norms)
        np.fill_diagonal(sim, 0.0)
        scores = table.loc[cid].to_numpy() @ sim
        return table.columns[np.argsort(-scores)[:10]].tolist()

    few = ids[:3]
    t, cpu = time.perf_counter(), time.process_time()
    for cid in few:
        brute(cid)
    brute_ms = (time.perf_counter() - t) * 1000.0 / len(few)
    brute_cpu = (time.process_time() - cpu) * 1000.0 / len(few)
    print(f"\nrecommend: batched {batched_ms:.2f} ms/customer ({batched_cpu:.2f} CPU), brute-force loop "
          f"{brute_ms:,.0f} ms/customer ({brute_cpu:,.0f} CPU); speed-up {brute_ms / batched_ms:,.0f}x "
          f"({brute_cpu / batched_cpu:,.0f}x CPU)")
    S = fitted["item-knn"].similarity_
    sparse_mb = (S.data.nbytes + S.indices.nbytes + S.indptr.nbytes) / 1e6
    dense_mb = S.shape[0] * S.shape[1] * 8 / 1e6
    users = fitted["user-knn"].users_
    print(f"memory: item-item top-{fitted['item-knn'].k} sparse {sparse_mb:.1f} MB vs dense float64 "
          f"{dense_mb:.1f} MB ({dense_mb / sparse_mb:.0f}x); user-knn keeps the training matrix "
          f"{(users.data.nbytes + users.indices.nbytes + users.indptr.nbytes) / 1e6:.1f} MB; "
          f"ALS item factors {fitted['als'].item_factors_.nbytes / 1e6:.1f} MB")
    for name in ("item-knn", "user-knn", "als"):
        rec.model = fitted[name]
        chunk = ids[:256]
        wanted = set(chunk)
        batch_events = [e for e in raw if e["customer_id"] in wanted]  # what the scorer read for the batch
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(3):
            rec.recommend(chunk, I.events_frame(batch_events), seg_of, END)
        per_batch, per_cpu = (time.perf_counter() - t) / 3, (time.process_time() - cpu) / 3
        print(f"scorer: +{per_batch * 1000:.0f} ms wall ({per_cpu * 1000:.0f} ms CPU) per batch of 256 with {name}: "
              f"{per_cpu / SCORER_BATCH_S:.0%} of the scorer's {SCORER_BATCH_S * 1000:.0f} ms per batch")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
