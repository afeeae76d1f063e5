"""Long-lived processes freeze their loaded models out of full GC passes, and a hot reload frees the old ones."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from custscore.scorer.heap import settle_long_lived
from custscore.scorer.worker import Worker
from tests.scorer.fakes import VERSIONS, FakeRegistry, open_embedded, simulate


class _Cyclic:
    """Something only the cyclic collector can free (as a model's object graph often is)."""

    def __init__(self):
        self.me = self


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()


def test_what_is_alive_is_frozen_and_a_later_settle_frees_what_was_dropped_since():
    kept = _Cyclic()
    dropped = _Cyclic()
    gone = weakref.ref(dropped)
    settle_long_lived()
    assert gc.get_freeze_count() > 0

    del dropped
    gc.collect()
    assert gone() is not None  # frozen: full passes no longer walk it

    settle_long_lived()  # what a hot reload calls: unfreeze, collect, freeze again
    assert gone() is None
    assert kept.me is kept


def test_a_following_worker_frees_the_models_a_hot_reload_replaced(tmp_path):
    store = open_embedded(tmp_path / "store.sqlite")
    simulate(store, 12)
    registry = FakeRegistry()
    loaded: list[weakref.ref] = []
    loader = registry.loader

    def tracked_loader(st):
        models = loader(st)
        models.cycle = models  # a reference cycle through the models, as fitted estimators may have
        loaded.append(weakref.ref(models))
        return models

    worker = Worker(store, tracked_loader, registry.probe, batch_size=4, max_wait_ms=20, poll_interval_s=0.01)
    stop, switched = threading.Event(), threading.Event()

    def on_batch(stats):
        if stats.switches:
            switched.set()
        elif stats.scored >= 4:
            registry.versions = {**VERSIONS, "churn": "c2"}  # promote: the next batch reloads

    thread = threading.Thread(target=worker.run, args=(stop, on_batch))
    thread.start()
    try:
        assert switched.wait(20), "the promoted models were not loaded"
    finally:
        stop.set()
        thread.join(timeout=20)
        store.close()
    assert gc.get_freeze_count() > 0
    assert len(loaded) == 2
    assert loaded[0]() is None, "the replaced models were kept alive (frozen) after the reload"
    assert loaded[1]() is worker.models


@pytest.mark.parametrize("customers, settles", [(20, 1), (6, 0)])
def test_a_one_shot_run_freezes_the_models_only_for_a_long_backlog(tmp_path, monkeypatch, customers, settles):
    import custscore.scorer.worker as worker_module

    store = open_embedded(tmp_path / "store.sqlite")
    simulate(store, customers)
    calls = []
    monkeypatch.setattr(worker_module, "SETTLE_BACKLOG_BATCHES", 4)
    monkeypatch.setattr(worker_module, "settle_long_lived", lambda: calls.append(1))
    registry = FakeRegistry()
    stats = Worker(store, registry.loader, registry.probe, batch_size=2).run_once()
    assert stats.scored == customers
    assert len(calls) == settles
