"""SIGKILL a worker process mid-batch while data streams in; after a restart every input is scored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from custscore.scorer.worker import Worker
from custscore.scorer.writeback import prediction_id
from custscore.store.loading import load_customers, load_events
from custscore.store.schema import CUSTOMERS, PREDICTIONS, SCORER_STATE
from tests.scorer.fakes import VERSIONS, FakeRegistry, event_counts, input_version, open_embedded, purchase, simulate

ROOT = Path(__file__).resolve().parents[2]
STREAM_PACE_S = 0.02  # the stream's own rate: one small chunk of inserts per tick


class Stream:
    """New customers and purchases of known ones, a few per tick."""

    def __init__(self, store, ids: list[str]):
        self.store, self.ids, self.n = store, list(ids), 0

    def tick(self) -> None:
        self.n += 1
        new = [{"customer_id": f"L{self.n:04d}{k}", "signup_date": "2024-03-01", "age": 20 + k} for k in range(3)]
        load_customers(self.store, new)
        self.ids.extend(d["customer_id"] for d in new)
        buyers = [self.ids[(self.n * 7 + k * 13) % len(self.ids)] for k in range(3)]
        load_events(self.store, [purchase(c, amount=self.n + k) for k, c in enumerate(buyers)])


def test_sigkill_mid_batch_then_restart_scores_every_input_exactly_once(tmp_path):
    path, marker = tmp_path / "store.sqlite", tmp_path / "in-flight"
    store = open_embedded(path)
    stream = Stream(store, simulate(store, 20))
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.scorer.crash_worker", str(path), str(marker), "0.2"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 40
        # stream until the worker has written something and is in the middle of another batch
        while not (store.collection(PREDICTIONS).count() > 0 and marker.exists()):
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker process never scored anything"
            stream.tick()
            time.sleep(STREAM_PACE_S)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert store.collection(SCORER_STATE).find_one({"_id": "worker-1-0"})["running"] is True  # it never stopped
    for _ in range(3):  # more arrives while no worker runs
        stream.tick()

    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe, batch_size=16).run_once()

    docs = list(store.collection(CUSTOMERS).find({}))
    counts = event_counts(store, [d["_id"] for d in docs])
    predictions = list(store.collection(PREDICTIONS).find({}))
    keys = Counter((p["customer_id"], p["input_version"]) for p in predictions)
    assert max(keys.values()) == 1  # no duplicate record for one input
    ids = {p["_id"] for p in predictions}
    for doc in docs:  # none missing: every customer scored on its current input, with its record
        current = input_version(doc, counts[doc["_id"]])
        assert doc["score"]["input_version"] == current
        assert prediction_id(doc["_id"], VERSIONS, current, doc["score"]["as_of"]) in ids
    assert len(docs) == len(stream.ids) > 20
