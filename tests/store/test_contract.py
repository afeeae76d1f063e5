"""The store contract: every backend (memory, embedded, real MongoDB when configured) passes it."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId

from custscore.errors import DuplicateKeyError, InputError
from custscore.store import DeleteOne, InsertOne, ReplaceOne, UpdateOne

DAY = dt.datetime(2024, 5, 1, 12, 30, 15, 123000)


@pytest.fixture
def people(store):
    coll = store["customers"]
    coll.insert_many(
        [
            {"_id": "a", "region": "north", "age": 30, "tags": ["x", "y"], "ph": {"orders": 3}, "signup_date": DAY},
            {"_id": "b", "region": "south", "age": 45, "tags": ["y"], "ph": {"orders": 0}},
            {"_id": "c", "region": None, "age": 61, "ph": {"orders": 9}},
            {"_id": "d", "age": "unknown"},
        ]
    )
    return coll


def ids(docs):
    return [d["_id"] for d in docs]


def test_insert_and_lookup_by_id(store):
    coll = store["events"]
    new_id = coll.insert_one({"amount": 1.5})
    assert isinstance(new_id, ObjectId)
    assert coll.find_one({"_id": new_id})["amount"] == 1.5
    assert coll.insert_many([{"_id": 7}, {"_id": "7"}]) == [7, "7"]
    assert coll.find_one({"_id": "7"}) == {"_id": "7"}
    assert coll.find_one({"_id": 7}) == {"_id": 7}
    assert coll.find_one({"_id": "missing"}) is None


def test_duplicate_id_in_a_transaction_stores_nothing(store):
    coll = store["customers"]
    coll.insert_one({"_id": "a"})
    with pytest.raises(DuplicateKeyError, match="'a'|a"), store.transaction():
        coll.insert_many([{"_id": "new"}, {"_id": "a"}])
    if store.backend == "mongodb" and not getattr(store, "replica_set", False):
        pytest.skip("a standalone mongod has no transactions")
    assert coll.find_one({"_id": "new"}) is None
    assert coll.count() == 1


def test_find_filters_on_indexed_and_plain_fields(people):
    assert ids(people.find({"region": "north"})) == ["a"]
    assert sorted(ids(people.find({"region": None}))) == ["c", "d"]
    assert ids(people.find({"age": {"$gt": 40}}, sort=[("age", 1)])) == ["b", "c"]
    assert sorted(ids(people.find({"tags": "y"}))) == ["a", "b"]
    assert ids(people.find({"ph.orders": {"$gte": 3}}, sort=[("_id", -1)])) == ["c", "a"]
    assert sorted(ids(people.find({"$or": [{"region": "south"}, {"age": 61}]}))) == ["b", "c"]
    assert ids(people.find({"_id": {"$in": ["d", "a", "zz"]}}, sort=[("_id", 1)])) == ["a", "d"]
    assert ids(people.find({"signup_date": {"$gte": dt.datetime(2024, 1, 1)}})) == ["a"]
    assert people.count() == 4
    assert people.count({"age": {"$type": "string"}}) == 1


def test_projection_sort_limit_skip(people):
    docs = list(people.find({}, {"age": 1, "_id": 0}, sort=[("_id", 1)], limit=2, skip=1))
    assert docs == [{"age": 45}, {"age": 61}]
    assert list(people.find({"_id": "a"}, {"ph.orders": 1})) == [{"_id": "a", "ph": {"orders": 3}}]
    assert "tags" not in people.find_one({"_id": "a"}, {"tags": 0})


def test_update_operators_and_counts(people):
    res = people.update_one(
        {"_id": "a"},
        {"$set": {"region": "east"}, "$inc": {"ph.orders": 2}, "$max": {"age": 35}, "$min": {"low": 5},
         "$push": {"tags": "z"}},
    )
    assert (res.matched, res.modified) == (1, 1)
    doc = people.find_one({"_id": "a"})
    assert (doc["region"], doc["ph"]["orders"], doc["age"], doc["low"], doc["tags"]) == ("east", 5, 35, 5, ["x", "y", "z"])
    noop = people.update_one({"_id": "a"}, {"$set": {"region": "east"}})
    assert (noop.matched, noop.modified) == (1, 0)
    assert people.update_one({"_id": "zz"}, {"$set": {"x": 1}}).matched == 0
    up = people.update_one({"_id": "zz"}, {"$set": {"x": 1}}, upsert=True)
    assert up.upserted_ids == ["zz"] and people.find_one({"_id": "zz"}) == {"_id": "zz", "x": 1}
    many = people.update_many({"age": {"$gte": 40}}, {"$set": {"senior": True}})
    assert many.modified == 2
    assert ids(people.find({"region": "east"})) == ["a"]  # the index follows updates


def test_replace_and_delete(people):
    people.replace_one({"_id": "b"}, {"region": "west"})
    assert people.find_one({"_id": "b"}) == {"_id": "b", "region": "west"}
    assert people.delete_one({"_id": "b"}).deleted == 1
    assert people.delete_many({"age": {"$gt": 0}}).deleted == 2
    assert ids(people.find()) == ["d"]


def test_bulk_write_applies_in_order(people):
    res = people.bulk_write(
        [
            InsertOne({"_id": "e", "age": 20}),
            UpdateOne({"_id": "e"}, {"$inc": {"age": 1}}),
            ReplaceOne({"_id": "c"}, {"age": 1}),
            DeleteOne({"_id": "d"}),
            UpdateOne({"_id": "f"}, {"$set": {"age": 2}}, upsert=True),
        ]
    )
    assert (res.inserted, res.matched, res.modified, res.deleted, res.upserted_ids) == (1, 2, 2, 1, ["f"])
    assert people.find_one({"_id": "e"})["age"] == 21
    assert people.find_one({"_id": "d"}) is None


def test_aggregate_group_bucket_and_lookup(store, people):
    out = people.aggregate(
        [{"$match": {"age": {"$type": "number"}}}, {"$group": {"_id": None, "mean": {"$avg": "$age"}, "n": {"$sum": 1}}}]
    )
    assert out[0]["n"] == 3 and out[0]["mean"] == pytest.approx((30 + 45 + 61) / 3)
    buckets = people.aggregate(
        [{"$match": {"age": {"$type": "number"}}},
         {"$bucket": {"groupBy": "$age", "boundaries": [0, 40, 60, 200], "default": "other", "output": {"n": {"$sum": 1}}}}]
    )
    assert [(b["_id"], b["n"]) for b in buckets] == [(0, 1), (40, 1), (60, 1)]
    store["events"].insert_many([{"customer_id": "a", "amount": 2.0}, {"customer_id": "a", "amount": 3.0}])
    joined = people.aggregate(
        [{"$match": {"_id": "a"}}, {"$lookup": {"from": "events", "localField": "_id", "foreignField": "customer_id", "as": "ev"}}]
    )
    assert sum(e["amount"] for e in joined[0]["ev"]) == 5.0


def test_distinct_and_indexes(store, people):
    assert sorted(people.distinct("region")) == ["north", "south"]
    assert sorted(people.distinct("tags")) == ["x", "y"]
    people.create_index("age")
    people.create_index("age")  # idempotent
    assert "age" in people.index_fields()
    assert ids(people.find({"age": 45})) == ["b"]
    assert {"customer_id", "ts"} <= set(store["events"].index_fields())


def test_datetimes_are_naive_utc_and_aware_queries_work(store):
    coll = store["events"]
    aware = dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    coll.insert_one({"_id": 1, "ts": aware})
    back = coll.find_one({"_id": 1})["ts"]
    assert back == dt.datetime(2024, 5, 1, 12, 30) and back.tzinfo is None
    assert coll.count({"ts": aware}) == 1
    assert coll.count({"ts": {"$lt": dt.datetime(2024, 5, 1, 12, 31)}}) == 1


@pytest.mark.parametrize("spec", [{"$where": "this.a == 1"}, {"a": {"$function": {}}}])
def test_server_side_javascript_is_refused(people, spec):
    with pytest.raises(InputError, match="JavaScript"):
        list(people.find(spec))
    with pytest.raises(InputError, match="JavaScript"):
        people.aggregate([{"$match": spec}])


@pytest.mark.parametrize("spec", [{"$where": "this.a == 1"}, {"a": {"$function": {}}}])
@pytest.mark.parametrize("write", ["update_one", "replace_one", "delete_one", "update_many", "delete_many",
                                   "bulk UpdateOne", "bulk ReplaceOne", "bulk DeleteOne"])
def test_server_side_javascript_is_refused_in_write_filters(people, spec, write):
    before = sorted((d["_id"], d.get("age")) for d in people.find({}))
    calls = {
        "update_one": lambda: people.update_one(spec, {"$set": {"age": 1}}),
        "replace_one": lambda: people.replace_one(spec, {"age": 1}),
        "delete_one": lambda: people.delete_one(spec),
        "update_many": lambda: people.update_many(spec, {"$set": {"age": 1}}),
        "delete_many": lambda: people.delete_many(spec),
        "bulk UpdateOne": lambda: people.bulk_write([UpdateOne(spec, {"$set": {"age": 1}})]),
        "bulk ReplaceOne": lambda: people.bulk_write([ReplaceOne(spec, {"age": 1})]),
        "bulk DeleteOne": lambda: people.bulk_write([DeleteOne(spec)]),
    }
    with pytest.raises(InputError, match="JavaScript"):
        calls[write]()
    assert sorted((d["_id"], d.get("age")) for d in people.find({})) == before  # nothing was written


def test_change_feed_resumes_after_its_token(store):
    coll = store["customers"]
    start = store.feed_position("customers")
    coll.insert_many([{"_id": f"c{i}", "v": i, "updated_at": dt.datetime(2024, 1, 1, 0, 0, i)} for i in range(5)])
    first = store.changes("customers", after=start, limit=3)
    assert [c.doc_id for c in first.changes] == ["c0", "c1", "c2"]
    polling = store.backend == "mongodb" and not store.replica_set  # a watermark poll cannot tell inserts
    assert all(c.operation == ("update" if polling else "insert") for c in first.changes)
    rest = store.changes("customers", after=first.token)
    assert [c.doc_id for c in rest.changes] == ["c3", "c4"]
    coll.update_one({"_id": "c1"}, {"$set": {"v": 10, "updated_at": dt.datetime(2024, 1, 2)}})
    coll.update_one({"_id": "c2"}, {"$set": {"v": 2}})  # changes nothing: no feed entry
    later = store.changes("customers", after=rest.token)
    assert [(c.doc_id, c.document["v"]) for c in later.changes] == [("c1", 10)]
    assert store.changes("customers", after=later.token).changes == []


def test_find_in_returns_columns_of_the_matching_documents(store):
    events = store["events"]
    events.insert_many([
        {"_id": 1, "customer_id": "a", "amount": 5.0, "ts": DAY, "meta": {"src": "web"}},
        {"_id": 2, "customer_id": "b", "amount": 7.5, "ts": DAY + dt.timedelta(days=2)},
        {"_id": 3, "customer_id": "c", "amount": 1.0, "ts": DAY},
        {"_id": 4, "customer_id": "a", "ts": DAY + dt.timedelta(days=1)},
    ])
    cols = events.find_in("customer_id", ["a", "b", "zz"], ["customer_id", "amount", "meta.src"])
    assert cols == {"customer_id": ["a", "b", "a"], "amount": [5.0, 7.5, None], "meta.src": ["web", None, None]}
    until = events.find_in("customer_id", ["a", "b"], ["_id"], filter={"ts": {"$lte": DAY + dt.timedelta(days=1)}})
    assert until == {"_id": [1, 4]}
    assert events.find_in("customer_id", [], ["amount"]) == {"amount": []}
    assert store["nothing_here"].find_in("x", [1], ["x"]) == {"x": []}
    with pytest.raises(InputError, match="JavaScript"):
        events.find_in("customer_id", ["a"], ["amount"], filter={"$where": "1"})
    docs = events.find_in_documents("customer_id", ["a", "b", "zz"], ["customer_id", "amount"],
                                    filter={"ts": {"$lte": DAY + dt.timedelta(days=2)}})
    assert [(d["customer_id"], d.get("amount")) for d in docs] == [("a", 5.0), ("b", 7.5), ("a", None)]
    assert events.find_in_documents("customer_id", [], ["amount"]) == []
    assert store["nothing_here"].find_in_documents("x", [1], ["x"]) == []
    with pytest.raises(InputError, match="JavaScript"):
        events.find_in_documents("customer_id", ["a"], ["amount"], filter={"$where": "1"})


def test_find_columns_reads_every_matching_document_into_columns_in_pages(store):
    events = store["events"]
    events.insert_many([{"_id": i, "customer_id": f"c{i % 7}", "amount": float(i), "ts": DAY + dt.timedelta(hours=i),
                         **({"meta": {"src": "web"}} if i % 2 else {})} for i in range(5000)])  # more than a page
    cols = events.find_columns(["_id", "amount", "meta.src"])
    assert cols["_id"] == list(range(5000)) and cols["amount"] == [float(i) for i in range(5000)]
    assert cols["meta.src"][:3] == [None, "web", None]
    assert events.find_columns(["customer_id"], {"ts": {"$lt": DAY + dt.timedelta(hours=3)}}) == {
        "customer_id": ["c0", "c1", "c2"]}
    assert events.find_columns(["amount"], {"amount": {"$gt": 1e9}}) == {"amount": []}
    assert store["nothing_here"].find_columns(["x"]) == {"x": []}
    with pytest.raises(InputError, match="JavaScript"):
        events.find_columns(["amount"], {"$where": "1"})
