"""The embedded engine's fast paths (compiled numeric filters, batched writes by ``_id``) answer like mongomock."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.store import mql
from custscore.store.base import InsertOne, UpdateOne
from custscore.store.embedded import EmbeddedStore
from tests.store.mongomock_pair import paired

numbers = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.just(math.nan), st.booleans(),
                    st.none(), st.just("2"), st.lists(st.integers(-2, 2), max_size=2))
number_conditions = st.one_of(
    st.integers(-3, 3), st.floats(-3, 3, allow_nan=False),
    st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq"]),
                    st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False)), min_size=1, max_size=2),
    st.builds(lambda vs: {"$in": vs}, st.lists(st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False)),
                                               min_size=1, max_size=3)),
)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(numbers, max_size=10), cond=number_conditions)
def test_a_numeric_filter_on_a_field_without_index_matches_like_mongomock(values, cond):
    coll, reference = paired(values)
    query = {"n": cond}
    assert sorted(d["_id"] for d in coll.find(query)) == sorted(d["_id"] for d in reference.find(query))


def test_a_batch_of_updates_by_id_has_the_effect_of_applying_them_one_by_one():
    one_by_one, batched = EmbeddedStore(None)["t"], EmbeddedStore(None)["t"]
    for coll in (one_by_one, batched):
        coll.create_index("k")
        coll.insert_many([{"_id": i, "k": i, "v": 0} for i in range(5)])
    ops = [UpdateOne({"_id": 1}, {"$set": {"v": 1, "k": 10}}),
           UpdateOne({"_id": 2}, {"$set": {"v": 0}}),  # no change
           UpdateOne({"_id": 9}, {"$set": {"v": 9}}),  # no match, no upsert
           UpdateOne({"_id": 8}, {"$setOnInsert": {"v": 8}}, upsert=True),
           UpdateOne({"_id": 3}, {"$setOnInsert": {"v": 3}}, upsert=True)]  # exists: nothing set
    expected = [one_by_one.bulk_write([op]) for op in ops]
    result = batched.bulk_write(ops)

    assert (result.matched, result.modified, result.upserted_ids) == (
        sum(r.matched for r in expected), sum(r.modified for r in expected), [8])
    assert list(batched.find({}, sort=[("_id", 1)])) == list(one_by_one.find({}, sort=[("_id", 1)]))
    assert [d["_id"] for d in batched.find({"k": 10})] == [1]  # the index column follows the update


def test_a_batch_of_updates_moves_each_changed_document_once_in_the_change_feed():
    store = EmbeddedStore(None)
    coll = store["t"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(3)])
    token = store.feed_position("t")
    coll.bulk_write([UpdateOne({"_id": 2}, {"$set": {"v": 2}}), UpdateOne({"_id": 0}, {"$set": {"v": 0}}),
                     UpdateOne({"_id": 1}, {"$set": {"v": 1}})])
    changes = store.changes("t", after=token).changes
    assert [(c.doc_id, c.operation, c.document["v"]) for c in changes] == [(2, "update", 2), (1, "update", 1)]


@pytest.mark.parametrize("ops", [
    [UpdateOne({"_id": 1}, {"$set": {"v": 1}}), UpdateOne({"_id": 1}, {"$inc": {"v": 1}})],  # same _id twice
    [UpdateOne({"_id": 1}, {"$set": {"v": 1}}), InsertOne({"_id": 7, "v": 7})],  # mixed kinds
])
def test_batches_the_fast_path_cannot_take_still_apply_in_order(ops):
    coll = EmbeddedStore(None)["t"]
    coll.insert_many([{"_id": 1, "v": 0, "at": dt.datetime(2025, 1, 1)}])
    coll.bulk_write(ops)
    assert coll.find_one({"_id": 1})["v"] in (1, 2)
    assert coll.find_one({"_id": 1})["v"] == (2 if len({type(o) for o in ops}) == 1 else 1)


def test_a_set_by_id_stores_a_copy_and_an_equal_set_changes_nothing():
    store = EmbeddedStore(None)
    coll = store.collection("t")
    coll.insert_many([{"_id": "a", "age": 30, "history": {"orders": 2}}])
    score = {"risk": "low", "reasons": [{"feature": "age"}]}
    assert coll.bulk_write([UpdateOne({"_id": "a"}, {"$set": {"score": score}})]).modified == 1
    score["risk"] = "high"  # the caller's dict changes afterwards: the stored one does not
    score["reasons"].append({"feature": "x"})
    position = store.feed_position("t")
    again = coll.bulk_write([UpdateOne({"_id": "a"}, {"$set": {"score": {"risk": "low", "reasons": [{"feature": "age"}]}}})])
    assert (again.matched, again.modified) == (1, 0)
    assert store.changes("t", after=position).changes == []
    assert coll.find_one({"_id": "a"}) == {"_id": "a", "age": 30, "history": {"orders": 2},
                                           "score": {"risk": "low", "reasons": [{"feature": "age"}]}}


def test_an_inclusion_projection_decoding_only_its_fields_reads_like_whole_documents_projected():
    docs = [
        {"_id": 1, "task": "churn", "aliases": ["production"], "extra": {"background": [{"x": 1.5}] * 50},
         "n": 3, "when": dt.datetime(2025, 1, 2, 3, 4, 5, 6000)},
        {"_id": 2, "task": "segment", "aliases": [], "extra": None, "n": 7.5, "arr": [{"k": 2, "v": [1, {"z": 1}]}]},
        {"_id": 3, "score": {"model_versions": {"churn": "c1"}, "reasons": [{"f": "age"}]}, "n": "seven"},
        {"_id": 4},
    ]
    store = EmbeddedStore(None)
    ours = store.collection("t")
    ours.insert_many([dict(d) for d in docs])
    cases = [
        ({"aliases": "production"}, {"task": 1, "version": 1}),
        ({}, {"_id": 1, "score.model_versions": 1, "when": 1}),
        ({"n": {"$gte": 3}}, {"task": 1, "_id": 0}),
        ({"arr.k": 2}, {"arr.v": 1}),
        ({}, {"extra": 1, "arr": True}),
        ({"_id": {"$in": [2, 3]}}, {"score": 1}),
    ]
    for filter, projection in cases:
        whole = [mql.project(d, projection) for d in ours.find(filter)]  # no projection: whole documents decoded
        assert whole, (filter, projection)
        assert list(ours.find(filter, projection)) == whole, (filter, projection)
        assert ours.find_one(filter, projection) == whole[0], (filter, projection)


_leaf = st.one_of(st.sampled_from(["k1", "k2", ""]), st.integers(-2, 2), st.just(math.nan), st.none(), st.booleans(),
                  st.just(dt.datetime(2026, 1, 1)), st.lists(st.sampled_from(["k1", 1]), max_size=2))
_inner = st.one_of(_leaf, st.fixed_dictionaries({}, optional={"key": _leaf, "x": _leaf}),
                   st.lists(st.fixed_dictionaries({}, optional={"key": _leaf}), max_size=2))
_paths_and_conditions = st.tuples(
    st.sampled_from(["s", "s.key", "s.key.deeper"]),
    st.one_of(st.builds(lambda v: {"$ne": v}, st.sampled_from(["k1", 1, 1.0, dt.datetime(2026, 1, 1)])),
              st.sampled_from(["k1", 2, {"$in": ["k1", "k2"]}, {"$gte": 0}, {"$lt": dt.datetime(2027, 1, 1)}])))


@settings(max_examples=200, deadline=None)
@given(docs=st.lists(st.fixed_dictionaries({}, optional={"s": _inner}), max_size=8), query=_paths_and_conditions)
def test_ne_and_paths_through_sub_documents_match_like_mongomock(docs, query):
    """``$ne`` (a missing field matches) and dotted paths compiled; arrays, None, NaN and other classes go to
    mongomock's engine (the scorer's scan is ``score.models_key $ne <current>``)."""
    import mongomock

    coll, reference = EmbeddedStore(None)["t"], mongomock.MongoClient().db.t
    for i, doc in enumerate(docs):
        coll.insert_one({"_id": i, **doc})
        reference.insert_one({"_id": i, **doc})
    path, cond = query
    spec = {path: cond}
    assert sorted(d["_id"] for d in coll.find(spec)) == sorted(d["_id"] for d in reference.find(spec))


class _Name(str):
    pass


@settings(max_examples=300, deadline=None)
@given(fields=st.one_of(st.dictionaries(st.one_of(st.text(alphabet="ab.$_id", max_size=4), st.integers(0, 2),
                                                  st.builds(_Name, st.just("a"))), st.none(), max_size=4),
                        st.none(), st.lists(st.text(max_size=2), max_size=2)))
def test_top_level_names_are_told_like_the_name_by_name_definition(fields):
    from custscore.store.updates import top_level

    reference = type(fields) is dict and bool(fields) and all(
        type(k) is str and k and "." not in k and k != "_id" and k[0] != "$" for k in fields)
    assert top_level(fields) == reference
