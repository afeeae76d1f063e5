"""Issue 13 item 8: a held write lock pauses long-running processes (they say so) and stops one-shot ones clearly."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from custscore.config import Settings
from custscore.errors import StoreBusy
from custscore.scorer.worker import Worker
from custscore.store import open_store, sqlite_engine
from custscore.store.locking import wait_for_write_lock
from custscore.store.schema import CUSTOMERS
from tests.scorer.fakes import FakeRegistry
from tests.security.cli_helpers import assert_one_red_line, cli
from tests.security.helpers import good


def _hold_lock(path) -> sqlite3.Connection:
    """Another process's writer in the middle of a long transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_one_shot_write_gives_up_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "store.sqlite"
    store = open_store(Settings.build(mongo_uri=f"embedded:{path}", home=tmp_path, environ={}))
    holder = _hold_lock(path)
    with pytest.raises(StoreBusy, match="is locked by another process that is writing to it "
                                        r"\(waited 0.2 s\); try again when it has finished"):
        store.collection(CUSTOMERS).insert_one(good("C1"))
    result = cli(tmp_path, "insert", "-", input='{"customer_id": "C2", "signup_date": "2024-01-01"}\n',
                 env={"CUSTSCORE_MONGO_URI": f"embedded:{path}"})
    assert_one_red_line(result, "is locked by another process that is writing to it")
    holder.rollback()
    holder.close()
    store.close()


def test_the_worker_waits_for_a_held_lock_says_so_and_then_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_engine, "WAIT_FIRST_S", 0.05)
    monkeypatch.setattr(sqlite_engine, "WAIT_LONGEST_S", 0.2)
    path = tmp_path / "store.sqlite"
    store = open_store(Settings.build(mongo_uri=f"embedded:{path}", home=tmp_path, environ={}))
    store.collection(CUSTOMERS).insert_many([good(f"C{i}") for i in range(5)])
    waits: list[float] = []
    waited_three_times = threading.Event()

    def on_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= 3:
            waited_three_times.set()

    assert wait_for_write_lock(store, on_wait)
    holder = _hold_lock(path)
    registry = FakeRegistry()
    stop, done = threading.Event(), threading.Event()

    def on_batch(stats):
        if stats.scored >= 5:
            done.set()
            stop.set()

    worker = Worker(store, registry.loader, registry.probe, max_wait_ms=0, poll_interval_s=0.01)
    errors: list[BaseException] = []

    def run():
        try:
            worker.run(stop, on_batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert waited_three_times.wait(60), "the worker never reported waiting"
    assert thread.is_alive() and not errors
    holder.commit()  # the other writer finishes
    holder.close()
    assert done.wait(60), errors
    stop.set()
    thread.join(60)
    assert not errors
    assert waits == sorted(waits) and waits[1] - waits[0] >= waits[0]  # growing pauses
    assert store.collection(CUSTOMERS).count({"score": {"$exists": True}}) == 5
    store.close()
