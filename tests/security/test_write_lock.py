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


def _release_after_three_waits(monkeypatch, holder) -> list:
    """The holder's transaction ends once the command has said three times that it is waiting (no sleeping)."""
    from custscore.store import locking

    said: list[float] = []
    original = locking.wait_for_write_lock

    def wrapped(store, on_wait=None):
        def counting(waited: float) -> None:
            on_wait(waited)
            said.append(waited)
            if len(said) == 3:
                holder.commit()

        return original(store, counting)

    monkeypatch.setattr(locking, "wait_for_write_lock", wrapped)
    return said


def _short_waits(monkeypatch) -> None:
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(sqlite_engine, "WAIT_FIRST_S", 0.05)
    monkeypatch.setattr(sqlite_engine, "WAIT_LONGEST_S", 0.2)


def test_score_watch_waits_for_a_held_lock_and_says_so(tmp_path, monkeypatch):
    from custscore.scorer import recommending

    _short_waits(monkeypatch)
    path = tmp_path / "store.sqlite"
    with open_store(Settings.build(mongo_uri=f"embedded:{path}", home=tmp_path, environ={})) as store:
        store.collection(CUSTOMERS).insert_many([good(f"C{i}") for i in range(5)])
    registry = FakeRegistry()

    class StopsWhenScored(Worker):
        def run(self, stop, on_batch=None):
            def batch(stats):
                if on_batch:
                    on_batch(stats)
                if stats.scored >= 5:
                    stop.set()

            return super().run(stop, batch)

    monkeypatch.setattr(recommending, "production_worker", lambda store, settings, **kw: StopsWhenScored(
        store, registry.loader, registry.probe, max_wait_ms=0, poll_interval_s=0.01))
    holder = _hold_lock(path)
    said = _release_after_three_waits(monkeypatch, holder)
    result = cli(tmp_path, "score", "--watch", "--max-age", "0", env={"CUSTSCORE_MONGO_URI": f"embedded:{path}"})
    holder.close()
    assert result.exit_code == 0, result.output
    assert len(said) >= 3 and "waiting for the store's write lock, held by another process" in result.output
    assert "stopped after 5 scores" in result.output


def test_simulate_stream_waits_for_a_held_lock_and_says_so(tmp_path, monkeypatch):
    _short_waits(monkeypatch)
    path = tmp_path / "store.sqlite"
    open_store(Settings.build(mongo_uri=f"embedded:{path}", home=tmp_path, environ={})).close()
    holder = _hold_lock(path)
    said = _release_after_three_waits(monkeypatch, holder)
    result = cli(tmp_path, "simulate", "--customers", "0", "--stream", "--rate", "20", "--duration", "0.5",
                 env={"CUSTSCORE_MONGO_URI": f"embedded:{path}"})
    holder.close()
    assert result.exit_code == 0, result.output
    assert len(said) >= 3 and "waiting for the store's write lock, held by another process" in result.output
    with open_store(Settings.build(mongo_uri=f"embedded:{path}", home=tmp_path, environ={})) as store:
        assert store.collection(CUSTOMERS).count() > 0
