"""A top-level ``$set`` spliced into the stored BSON bytes stores what decoding, updating and encoding stores."""

from __future__ import annotations

import datetime as dt
import re

import bson
import pytest
from bson.binary import Binary
from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from custscore.errors import LimitExceeded
from custscore.store.base import UpdateOne
from custscore.store.bson_elements import MalformedBSON, elements, set_elements
from custscore.store.embedded import EmbeddedStore

EVERY_TYPE = {
    "_id": "c1", "double": 1.5, "text": "héllo", "doc": {"a": [1, {"b": None}]}, "array": [1, "2", [3]],
    "binary": Binary(b"\x00\x01", 5), "oid": ObjectId("64b7f0c2a1b2c3d4e5f60718"), "yes": True,
    "when": dt.datetime(2025, 6, 30, 12, 0, 0, 123000), "nothing": None, "regex": Regex("^a.*z$", "i"),
    "pointer": DBRef("coll", ObjectId("64b7f0c2a1b2c3d4e5f60718")), "code": Code("x = 1"),
    "scoped": Code("x = y", {"y": 2}), "int32": 7, "stamp": Timestamp(5, 1), "int64": Int64(2**40),
    "decimal": Decimal128("1.10"), "low": MinKey(), "high": MaxKey(),
}

scalars = st.one_of(st.integers(-2**31, 2**31 - 1), st.floats(allow_nan=False), st.text(max_size=5), st.booleans(),
                    st.none(), st.datetimes(min_value=dt.datetime(1970, 1, 1)).map(lambda d: d.replace(microsecond=0)))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)),
                      max_leaves=8)
keys = st.sampled_from(["a", "b", "c", "score", "é"])


def _same(a, b) -> bool:
    return bson.encode({"": a}) == bson.encode({"": b})


def _reference(doc: dict, fields: dict) -> dict | None:
    """The decoding path: the fields set on the decoded document; None when every value is stored as it is."""
    if all(k in doc and _same(doc[k], v) for k, v in fields.items()):
        return None
    return {**doc, **fields}


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(keys, values, max_size=5), fields=st.dictionaries(keys, values, min_size=1, max_size=3))
def test_a_spliced_set_stores_the_bytes_the_decoding_path_stores(doc, fields):
    stored = bson.decode(bson.encode({"_id": 1, **doc}))
    fields = bson.decode(bson.encode(fields))  # values as they come back (tuples as lists, datetimes in ms)
    spliced = set_elements(bson.encode(stored), bson.encode(fields))
    expected = _reference(stored, fields)
    if expected is None:
        assert spliced is None
    else:
        blob, changed = spliced
        assert blob == bson.encode(expected)
        assert sorted(changed) == sorted(k for k in fields if k not in stored or not _same(stored[k], fields[k]))


def test_every_bson_type_is_walked_and_kept_byte_for_byte():
    blob = bson.encode(EVERY_TYPE)
    assert [key for key, _, _ in elements(blob)] == list(EVERY_TYPE)
    new, changed = set_elements(blob, bson.encode({"int32": 8, "added": "x"}))
    assert changed == ["int32", "added"]
    assert bson.decode(new) == {**EVERY_TYPE, "int32": 8, "added": "x"}


@pytest.mark.parametrize("blob", [b"", b"\x05\x00\x00\x00", bson.encode({"a": 1})[:-1] + b"\x01",
                                  b"\x0c\x00\x00\x00\x02a\x00\xff\x00\x00\x00\x00", b"\x08\x00\x00\x00\x99a\x00\x00",
                                  b"\x10\x00\x00\x00\x03a\x00\xf0\xff\xff\xff\x00\x00\x00\x00\x00\x00",  # length < 0
                                  b"\x0c\x00\x00\x00\x08\xff\xfe\x00\x01\x00\x00\x00",  # a name not UTF-8
                                  b"\x0a\x00\x00\x00\x08abcd\x00"])  # no NUL ends the name
def test_bytes_that_are_not_a_whole_document_are_refused(blob):
    with pytest.raises(MalformedBSON):
        set_elements(blob, bson.encode({"a": 2}))


def test_a_set_by_id_keeps_every_other_field_as_stored_and_moves_its_index():
    store = EmbeddedStore(None)
    coll = store["t"]
    coll.create_index("score.band")
    coll.create_index("when")
    coll.insert_many([dict(EVERY_TYPE)])
    coll.bulk_write([UpdateOne({"_id": "c1"}, {"$set": {"score": {"band": "high"}}})])
    coll.update_one({"_id": "c1"}, {"$set": {"text": "other"}})
    assert coll.find_one({"_id": "c1"}) == {**EVERY_TYPE, "text": "other", "score": {"band": "high"}}
    assert [d["_id"] for d in coll.find({"score.band": "high"})] == ["c1"]
    assert [d["_id"] for d in coll.find({"when": EVERY_TYPE["when"]})] == ["c1"]


def test_a_set_past_16_mb_is_refused_and_the_document_kept():
    coll = EmbeddedStore(None)["t"]
    coll.insert_many([{"_id": "a", "big": "x" * (9 * 2**20)}])
    with pytest.raises(LimitExceeded, match=re.escape("document 'a' cannot be stored: it is 18.0 MB of BSON")):
        coll.bulk_write([UpdateOne({"_id": "a"}, {"$set": {"more": "y" * (9 * 2**20)}})])
    with pytest.raises(LimitExceeded, match="nested more than 100 levels"):
        deep: dict = {}
        for _ in range(150):
            deep = {"d": deep}
        coll.update_one({"_id": "a"}, {"$set": {"deep": deep}})
    assert set(coll.find_one({"_id": "a"})) == {"_id", "big"}


@pytest.mark.parametrize("stored, written, modified", [(1, True, 1), (1, 1.0, 1), (1, 1, 0), ({"a": 1}, {"a": True}, 1),
                                                       (0.0, -0.0, 1), (2.5, 2.5, 0),
                                                       ("x" * 800, "x" * 800, 0), ("x" * 800, "y" * 800, 1)])
def test_a_set_is_a_no_op_only_when_the_value_is_stored_the_same_as_on_mongodb(stored, written, modified):
    import mongomock

    coll, reference = EmbeddedStore(None)["t"], mongomock.MongoClient().db.t
    for ops in ([UpdateOne({"_id": 1}, {"$set": {"n": written}})], "update_one"):
        coll.delete_many({})
        reference.delete_many({})
        coll.insert_many([{"_id": 1, "n": stored}])
        reference.insert_one({"_id": 1, "n": stored})
        set_n = {"$set": {"n": written}}
        got = coll.update_one({"_id": 1}, set_n) if ops == "update_one" else coll.bulk_write(ops)
        reference.update_one({"_id": 1}, {"$set": {"n": written}})
        # the document as mongomock stores it; the count as MongoDB's (it compares the BSON: 1 -> true is a change,
        # which mongomock stores but counts as none)
        assert (got.modified, coll.find_one({"_id": 1})) == (modified, reference.find_one({"_id": 1}))
