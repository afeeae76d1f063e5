"""Scans narrowed by cached field values (store/field_cache.py) answer like mongomock, across writes."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.store import field_cache
from custscore.store.base import UpdateOne
from custscore.store.embedded import EmbeddedStore
from tests.store.mongomock_pair import paired

DAY = dt.datetime(2024, 5, 1)
values = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.just(math.nan), st.booleans(),
                   st.none(), st.sampled_from(["a", "b", "2"]), st.sampled_from([DAY, DAY + dt.timedelta(days=1)]),
                   st.lists(st.integers(-2, 2), max_size=2), st.just({"k": 1}))
operands = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.sampled_from(["a", "b"]),
                     st.sampled_from([DAY, DAY + dt.timedelta(days=1)]))
conditions = st.one_of(
    operands,
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq"]), operands),
    st.builds(lambda vs: {"$in": vs}, st.lists(st.integers(-3, 3), min_size=1, max_size=3)),
)
# a write between two queries: set n, unset n, delete, insert (which may reuse the deleted last row's pos)
writes = st.tuples(st.sampled_from(["set", "unset", "delete", "insert"]), st.integers(0, 7), values)


def _built_at_once(candidates):
    def first_scan_builds(self, conn, table, field, kind, test):
        self._scanned.add((table, field))
        return candidates(self, conn, table, field, kind, test)
    return first_scan_builds


@pytest.fixture(autouse=True)
def always_narrow(monkeypatch):
    monkeypatch.setattr(field_cache, "CANDIDATES_MOST", 1.0)  # the cached path even when most rows are candidates
    monkeypatch.setattr(field_cache.FieldCaches, "candidates", _built_at_once(field_cache.FieldCaches.candidates))


def _apply(colls, kind, i, value):
    for coll in colls:
        if kind == "set":
            coll.update_one({"_id": i}, {"$set": {"n": value}})
        elif kind == "unset":
            coll.update_one({"_id": i}, {"$unset": {"n": ""}})
        elif kind == "delete":
            coll.delete_one({"_id": i})
        elif coll.find_one({"_id": i}) is None:
            coll.insert_one({"_id": i, "n": value})


@settings(max_examples=120, deadline=None)
@given(start=st.lists(values, min_size=1, max_size=8), steps=st.lists(st.tuples(writes, conditions), max_size=6))
def test_a_cached_scan_matches_mongomock_after_every_write(start, steps):
    coll, reference = paired(start)
    for (kind, i, value), cond in [(("set", 0, start[0]), {"$gte": 0}), *steps]:
        _apply((coll, reference), kind, i, value)
        query = {"n": cond}
        assert [d["_id"] for d in coll.find(query)] == [d["_id"] for d in reference.find(query)], query
        assert coll.count(query) == reference.count_documents(query)


def test_a_cached_scan_sees_writes_of_another_process(tmp_path):
    writer, reader = EmbeddedStore(tmp_path / "s.sqlite")["t"], EmbeddedStore(tmp_path / "s.sqlite")["t"]
    writer.insert_many([{"_id": i, "n": i} for i in range(100)])
    assert [d["_id"] for d in reader.find({"n": {"$gte": 98}})] == [98, 99]
    writer.update_one({"_id": 5}, {"$set": {"n": 1000}})
    writer.delete_one({"_id": 99})
    writer.insert_one({"_id": "new", "n": 99.5})
    assert [d["_id"] for d in reader.find({"n": {"$gte": 98}})] == [5, 98, "new"]
    assert [d["_id"] for d in reader.find({"n": {"$gte": 98}}, limit=2)] == [5, 98]


def test_a_write_rolled_back_inside_a_transaction_leaves_no_cached_value(tmp_path):
    store = EmbeddedStore(tmp_path / "s.sqlite")
    coll = store["t"]
    coll.insert_many([{"_id": i, "n": i} for i in range(10)])
    with pytest.raises(RuntimeError), store.transaction():
        coll.update_one({"_id": 1}, {"$set": {"n": 50}})
        assert [d["_id"] for d in coll.find({"n": {"$gt": 8}})] == [1, 9]
        raise RuntimeError("roll back")
    assert [d["_id"] for d in coll.find({"n": {"$gt": 8}})] == [9]


def test_an_update_by_id_keeps_index_columns_and_the_change_feed_true(tmp_path):
    store = EmbeddedStore(tmp_path / "s.sqlite")
    coll = store["t"]
    coll.create_index("k")
    coll.insert_many([{"_id": i, "k": i, "v": 0} for i in range(5)])
    token = store.feed_position("t")
    assert vars(coll.update_one({"_id": 1}, {"$set": {"v": 1}})) == vars(
        coll.bulk_write([UpdateOne({"_id": 9}, {"$set": {"v": 1}})])) | {"matched": 1, "modified": 1}
    coll.update_one({"_id": 2}, {"$set": {"k": 20}})
    assert vars(coll.update_one({"_id": 3}, {"$set": {"v": 0}}))["modified"] == 0  # equal: nothing written
    assert vars(coll.update_one({"_id": "missing"}, {"$set": {"v": 1}}))["matched"] == 0
    assert [d["_id"] for d in coll.find({"k": 20})] == [2]
    assert [d["_id"] for d in coll.find({"k": {"$gte": 1}}, sort=[("k", 1)], limit=5)] == [1, 3, 4, 2]
    assert [c.doc_id for c in store.changes("t", after=token).changes] == [1, 2]
