"""``find_in`` through the row cache (store/row_cache.py): only new or changed rows are decoded, and every read
answers as an uncached read would, across writes of this and other processes, transactions and evictions."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.store.embedded import EmbeddedStore
from custscore.store.reading import rows_cached

DAY = dt.datetime(2025, 3, 1)
FIELDS = ["customer_id", "ts", "amount"]


def _events(n: int = 30) -> list[dict]:
    return [{"_id": f"e{i}", "customer_id": f"C{i % 5}", "ts": DAY + dt.timedelta(days=i), "amount": float(i),
             "note": "x" * i} for i in range(n)]


def _store(tmp_path, name="s.sqlite") -> EmbeddedStore:
    store = EmbeddedStore(tmp_path / name)
    store["events"].create_index("customer_id")
    store["events"].create_index("ts")
    return store


def _read(store: EmbeddedStore, ids=("C1", "C2"), until=DAY + dt.timedelta(days=20)) -> dict:
    return store["events"].find_in("customer_id", list(ids), FIELDS, {"ts": {"$lte": until}})


def _uncached(store: EmbeddedStore, ids=("C1", "C2"), until=DAY + dt.timedelta(days=20)) -> dict:
    docs = list(store["events"].find({"customer_id": {"$in": list(ids)}, "ts": {"$lte": until}}))
    return {f: [d.get(f) for d in docs] for f in FIELDS}


def test_a_second_read_decodes_only_the_rows_that_changed(tmp_path):
    store = _store(tmp_path)
    store["events"].insert_many(_events())
    cache = rows_cached(store.engine)
    first = _read(store)
    decoded = cache.decoded
    assert first == _uncached(store) and decoded == 8  # C1 and C2 up to day 20
    assert _read(store) == first and cache.decoded == decoded
    store["events"].update_one({"_id": "e6"}, {"$set": {"amount": 60.5}})
    store["events"].insert_one({"_id": "new", "customer_id": "C1", "ts": DAY, "amount": 1.5})
    again = _read(store)
    assert again == _uncached(store) and cache.decoded == decoded + 2
    assert 60.5 in again["amount"] and again["customer_id"].count("C1") == 5


def test_writes_of_another_process_are_seen(tmp_path):
    writer, reader = _store(tmp_path), EmbeddedStore(tmp_path / "s.sqlite")
    writer["events"].insert_many(_events())
    assert _read(reader) == _uncached(writer)
    writer["events"].update_one({"_id": "e1"}, {"$set": {"amount": -1.0}})
    writer["events"].delete_one({"_id": "e2"})
    writer["events"].update_one({"_id": "e7"}, {"$set": {"customer_id": "C3"}})
    writer["events"].insert_one({"_id": "late", "customer_id": "C2", "ts": DAY, "amount": 9.0})
    assert _read(reader) == _uncached(writer)
    assert -1.0 in _read(reader)["amount"] and "late" not in _read(reader)["customer_id"]


def test_a_rolled_back_write_leaves_nothing_cached(tmp_path):
    store = _store(tmp_path)
    store["events"].insert_many(_events())
    before = _read(store)
    with pytest.raises(RuntimeError), store.transaction():
        store["events"].update_one({"_id": "e1"}, {"$set": {"amount": 1000.0}})
        assert 1000.0 in _read(store)["amount"]  # the transaction's own read sees its write
        raise RuntimeError("roll back")
    assert _read(store) == before
    store["events"].update_one({"_id": "e1"}, {"$set": {"amount": 2.0}})  # may reuse the rolled-back number
    assert _read(store) == _uncached(store)


def test_a_filter_on_a_field_without_index_is_still_applied(tmp_path):
    store = _store(tmp_path)
    store["events"].insert_many(_events())
    got = store["events"].find_in("customer_id", ["C1", "C2"], ["amount"], {"amount": {"$gt": 10}})
    assert got == {"amount": [11.0, 12.0, 16.0, 17.0, 21.0, 22.0, 26.0, 27.0]}
    assert store["events"].find_in("customer_id", ["C1"], ["amount"], {"amount": {"$gt": 25}}) == {"amount": [26.0]}


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["set", "move", "delete", "insert"]), st.integers(0, 39),
                                st.integers(0, 30)), max_size=8),
       most=st.integers(1, 12))
def test_every_read_answers_as_an_uncached_read_even_when_the_cache_evicts(tmp_path_factory, steps, most):
    store = _store(tmp_path_factory.mktemp("rows"))
    store["events"].insert_many(_events())
    rows_cached(store.engine).most_rows = most
    for kind, i, value in steps:
        coll = store["events"]
        if kind == "set":
            coll.update_one({"_id": f"e{i}"}, {"$set": {"amount": float(value)}})
        elif kind == "move":
            coll.update_one({"_id": f"e{i}"}, {"$set": {"customer_id": f"C{value % 5}"}})
        elif kind == "delete":
            coll.delete_one({"_id": f"e{i}"})
        elif coll.find_one({"_id": f"e{i}"}) is None:
            coll.insert_one({"_id": f"e{i}", "customer_id": f"C{value % 5}", "ts": DAY, "amount": 0.5})
        ids = ("C1", "C2", f"C{value % 5}")
        assert _read(store, ids) == _uncached(store, ids)
    assert rows_cached(store.engine).size <= max(most, 1) + 40
