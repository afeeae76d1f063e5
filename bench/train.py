"""Benchmark: `train --task all` on simulated customers, per-model fit time and production predict speed.

Usage::

    python bench/train.py          # 20,000 customers
    python bench/train.py N        # N customers

Prints the wall time of training all three tasks (every family, 5-fold CV), each family's fit
seconds relative to the linear model fitted in the same run, and rows/s of each production
model predicting (and, separately, explaining) 5,000 customers in memory.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from custscore.config import Settings
from custscore.models import feature_reads
from custscore.models import features as F
from custscore.models.predict import load_production
from custscore.models.train import TrainOptions, train
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import open_store

SEED = 7
PREDICT_ROWS = 5_000


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings.build(mongo_uri=f"embedded:{home / 'store.sqlite'}", home=home, environ={})
        store = open_store(settings)
        run_simulation(store, SimulationConfig(n_customers=n, seed=SEED))
        t0 = time.perf_counter()
        results = train(store, settings, TrainOptions(seed=SEED))
        wall = time.perf_counter() - t0
        print(f"train --task all on {n:,} customers: {wall:,.0f} s wall")
        for r in results:
            board = r.leaderboard.dropna(subset=["fit_s"])
            linear = board.loc[board["model"] == "linear", "fit_s"]
            base = float(linear.iloc[0]) if len(linear) else None
            parts = [f"{row.model} {row.fit_s:.1f}s" + (f" ({row.fit_s / base:.1f}x linear)" if base else "")
                     for row in board.itertuples()]
            print(f"  {r.task} (winner {r.winner}): " + ", ".join(parts))
        models = load_production(store, settings)
        ids = [d["_id"] for d in store["customers"].find({}, projection={"_id": 1}, limit=PREDICT_ROWS)]
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        X = F.customer_features(feature_reads.read_customers(store, ids), feature_reads.read_events(store, ids), now, models.categories)
        for task, loaded in models.loaded.items():
            cols = [f["name"] for f in loaded.manifest["features"]]
            fn = loaded.pipeline.predict_proba if task == "churn" else loaded.pipeline.predict
            t0 = time.perf_counter()
            fn(X[cols])
            predict = len(X) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            models.explainers[task].explain(X[cols])
            explain = len(X) / (time.perf_counter() - t0)
            print(f"  production {task} ({type(loaded.pipeline.named_steps['model']).__name__}): predict "
                  f"{predict:,.0f} rows/s, SHAP {explain:,.0f} rows/s ({predict / explain:.0f}x slower to explain)")
        store.close()


if __name__ == "__main__":
    main(sys.argv)
