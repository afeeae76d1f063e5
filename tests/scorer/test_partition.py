"""Workers split customers by a stable hash: disjoint and complete partitions."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from custscore.errors import ConfigError
from custscore.scorer.partition import Partition, stable_hash
from custscore.scorer.worker import Worker
from custscore.store.loading import load_events
from custscore.store.schema import CUSTOMERS, PREDICTIONS, SCORER_STATE
from tests.scorer.fakes import FakeRegistry, open_embedded, purchase, simulate


def test_stable_hash_is_fixed_across_processes_and_versions():
    # a changed value would silently move customers between running workers
    assert stable_hash("C0000001") == 0x92EEB6446C0CB9FC
    assert stable_hash("C0000001") != stable_hash("C0000002")


def test_each_customer_belongs_to_exactly_one_of_n_workers():
    ids = [f"C{i:07d}" for i in range(1000)]
    owners = Counter(sum(Partition(3, k).owns(c) for k in range(3)) for c in ids)
    assert owners == {1: 1000}
    shares = [sum(Partition(3, k).owns(c) for c in ids) for k in range(3)]
    assert min(shares) > 250  # roughly even


@pytest.mark.parametrize("workers, index", [(0, 0), (2, 2), (2, -1), (True, 0)])
def test_bad_partition_is_refused_with_the_flag_name(workers, index):
    with pytest.raises(ConfigError, match="--worker"):
        Partition(workers, index)


def test_two_workers_on_one_store_score_every_customer_exactly_once(tmp_path):
    path = tmp_path / "store.sqlite"
    setup = open_embedded(path)
    ids = simulate(setup, 60)
    registry = FakeRegistry()
    results: dict[int, object] = {}

    def run(index: int) -> None:
        store = open_embedded(path)  # its own connection, as a second process would have
        try:
            results[index] = Worker(store, registry.loader, registry.probe, batch_size=8,
                                    workers=2, worker_index=index).run_once()
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    by_worker = Counter(p["worker"] for p in setup.collection(PREDICTIONS).find({}))
    per_customer = Counter(p["customer_id"] for p in setup.collection(PREDICTIONS).find({}))
    assert per_customer == Counter(ids)  # complete, and nobody twice
    assert by_worker == {"worker-2-0": results[0].scored, "worker-2-1": results[1].scored}
    for p in setup.collection(PREDICTIONS).find({}):
        assert Partition(2, int(p["worker"][-1])).owns(p["customer_id"])
    assert {d["_id"] for d in setup.collection(SCORER_STATE).find({})} == {"worker-2-0", "worker-2-1"}

    # a purchase afterwards is picked up by its owner only
    load_events(setup, [purchase(ids[7])])
    owner = 0 if Partition(2, 0).owns(ids[7]) else 1
    again = [Worker(setup, registry.loader, registry.probe, workers=2, worker_index=i).run_once() for i in range(2)]
    assert again[owner].scored == 1 and again[1 - owner].scored == 0
    assert setup.collection(CUSTOMERS).count({"score": {"$exists": True}}) == 60
    setup.close()
