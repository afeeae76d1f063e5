"""Embedded-engine specifics: SQL narrowing never changes an answer, multi-process safety, validation of names."""

from __future__ import annotations

import datetime as dt

import mongomock
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from custscore.errors import InputError, StoreError, StoreUnavailable
from custscore.store.embedded import EmbeddedStore

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["a", "b", "", "2024-01-01T00:00:00.000"]),
    st.sampled_from([dt.datetime(2024, 1, 1), dt.datetime(2023, 6, 1, 12)]),
    st.lists(st.integers(-2, 2), max_size=3),
)
conditions = st.one_of(
    values,
    st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq", "$ne"]), values, min_size=1, max_size=2),
    st.builds(lambda vs: {"$in": vs}, st.lists(values, min_size=1, max_size=3)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.one_of(st.fixed_dictionaries({}, optional={"f": values, "g": values})), max_size=12), cond=conditions)
@example(docs=[{"f": [1, 2]}, {"f": "a"}, {}], cond=1)
@example(docs=[{"f": [1, 2]}, {"f": True}, {"f": None}], cond={"$lt": 2})
@example(docs=[{"f": 1}, {"f": 1.0}, {"f": [1]}, {"f": [2]}, {}, {"f": None}, {"f": True}, {"f": "1"}], cond={"$ne": 1})
@example(docs=[{"f": "a"}, {"f": ["a"]}, {}, {"f": dt.datetime(2024, 1, 1)}], cond={"$ne": "a", "$gte": "a"})
def test_indexed_queries_answer_exactly_like_mongo_semantics(docs, cond):
    store = EmbeddedStore(None)
    coll = store["t"]
    coll.create_index("f")
    reference = mongomock.MongoClient().db.t
    for i, doc in enumerate(docs):
        coll.insert_one({"_id": i, **doc})
        reference.insert_one({"_id": i, **doc})
    query = {"f": cond}
    expected = sorted(d["_id"] for d in reference.find(query))
    assert sorted(d["_id"] for d in coll.find(query)) == expected
    assert coll.count(query) == len(expected)


@pytest.mark.parametrize(
    "query, expected",
    [({"f": 1}, [0, 2]), ({"f": {"$in": [2, "x"]}}, [0]), ({"f": {"$gt": 1}}, [0]), ({"f": None}, [3, 4])],
)
def test_array_and_missing_values_are_still_found(query, expected):
    coll = EmbeddedStore(None)["t"]
    coll.create_index("f")
    coll.insert_many([{"_id": 0, "f": [1, 2]}, {"_id": 1, "f": 0}, {"_id": 2, "f": 1.0}, {"_id": 3}, {"_id": 4, "f": None}])
    assert sorted(d["_id"] for d in coll.find(query)) == expected


@settings(max_examples=100, deadline=None)
@given(
    docs=st.lists(st.fixed_dictionaries({}, optional={"f": values}), max_size=15),
    direction=st.sampled_from([1, -1]),
    limit=st.integers(1, 5),
)
def test_sorted_limited_reads_through_the_index_agree_with_a_full_sort(docs, direction, limit):
    coll = EmbeddedStore(None)["t"]
    coll.insert_many([{"_id": i, **d} for i, d in enumerate(docs)])
    full = [d.get("f") for d in coll.find(sort=[("f", direction)])]
    coll.create_index("f")
    fast = [d.get("f") for d in coll.find(sort=[("f", direction)], limit=limit)]
    # ties may come in any order; the sequence of sort values must match
    from mongomock.filtering import resolve_sort_key

    def ties(a, b):
        ka, kb = resolve_sort_key("f", {"f": a}), resolve_sort_key("f", {"f": b})
        return not ka < kb and not kb < ka

    assert len(fast) == len(full[:limit])
    assert all(ties(a, b) for a, b in zip(fast, full[:limit], strict=True))


def test_index_created_after_data_is_backfilled():
    store = EmbeddedStore(None)
    coll = store["t"]
    coll.insert_many([{"_id": i, "k": i % 3} for i in range(30)])
    coll.create_index("k")
    assert coll.count({"k": 1}) == 10


def test_second_process_view_sees_index_and_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    one, two = EmbeddedStore(path), EmbeddedStore(path)
    one["t"].insert_one({"_id": 1, "k": "x"})
    assert two["t"].find_one({"_id": 1}) == {"_id": 1, "k": "x"}
    one["t"].create_index("k")
    assert two["t"].index_fields() == ["k"]
    two["t"].insert_one({"_id": 2, "k": "x"})
    assert one["t"].count({"k": "x"}) == 2


def test_failed_transaction_leaves_nothing(tmp_path):
    store = EmbeddedStore(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError), store.transaction():
        store["a"].insert_one({"_id": 1})
        store["b"].insert_one({"_id": 2})
        raise RuntimeError("boom")
    assert store["a"].count() == 0 and store["b"].count() == 0


def test_bad_names_and_tokens_are_clear_errors(tmp_path):
    store = EmbeddedStore(None)
    with pytest.raises(InputError, match="collection name 'bad name'"):
        store["bad name"].find_one()
    with pytest.raises(StoreError, match="resume token 'nope'"):
        store.changes("t", after="nope")
    not_sqlite = tmp_path / "junk.sqlite"
    not_sqlite.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match="junk.sqlite"):
        EmbeddedStore(not_sqlite)


def test_token_from_a_recreated_store_is_refused(tmp_path):
    from custscore.errors import ChangeFeedLost

    store = EmbeddedStore(tmp_path / "s.sqlite")
    store["t"].insert_many([{"_id": i} for i in range(5)])
    token = store.changes("t").token
    store.close()
    (tmp_path / "s.sqlite").unlink()
    fresh = EmbeddedStore(tmp_path / "s.sqlite")
    with pytest.raises(ChangeFeedLost, match="recreated"):
        fresh.changes("t", after=token)


def test_fast_filter_path_agrees_with_mongomock():
    """The scorer's hot filters (str $in, datetime ranges) skip mongomock; the answer must not change."""
    import datetime as dt

    from mongomock import filtering

    from custscore.store.fast_filter import matches as _matches

    t = dt.datetime(2026, 1, 1)
    docs = [{"customer_id": "A", "ts": t}, {"customer_id": "B", "ts": t + dt.timedelta(days=1)},
            {"customer_id": ["A", "C"], "ts": t}, {"customer_id": 5, "ts": "2026"}, {"ts": t}, {"customer_id": None}]
    specs = [{"customer_id": {"$in": ["A", "B"]}}, {"customer_id": {"$in": ["A"]}, "ts": {"$lte": t}},
             {"ts": {"$gt": t}}, {"customer_id": "A"}, {"customer_id": {"$eq": "C"}},
             {"customer_id": {"$in": ["A", 5]}}, {"ts": {"$gte": t, "$lt": t + dt.timedelta(days=1)}}]
    for spec in specs:
        for doc in docs:
            assert _matches(spec, doc) == filtering.filter_applies(spec, doc), (spec, doc)
