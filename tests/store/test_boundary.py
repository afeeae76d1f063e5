"""Engine errors through the embedded store come out as custscore errors with one-line messages (store/boundary.py)."""

from __future__ import annotations

import sqlite3

import pytest

from custscore.errors import InputError, StoreBusy, StoreError
from custscore.store import sqlite_engine
from custscore.store.embedded import EmbeddedStore

REFUSED = "the filter was refused ({}); use query operators such as $gt, $in, $regex"


@pytest.fixture
def people(tmp_path):
    store = EmbeddedStore(tmp_path / "store.sqlite")
    store["customers"].insert_many([{"_id": f"c{i}", "age": 20 + i, "region": "north" * 100} for i in range(300)])
    yield store
    store.close()


@pytest.mark.parametrize("call", [
    lambda c, f: list(c.find(f)),
    lambda c, f: c.find_one(f),
    lambda c, f: c.count(f),
    lambda c, f: c.distinct("age", f),
    lambda c, f: c.update_one(f, {"$set": {"x": 1}}),
    lambda c, f: c.delete_one(f),
], ids=["find", "find_one", "count", "distinct", "update_one", "delete_one"])
def test_a_bad_operator_is_a_refused_filter_on_every_read_and_write(people, call):
    with pytest.raises(InputError) as err:
        call(people["customers"], {"age": {"$foo": 1}})
    assert str(err.value) == REFUSED.format("unknown operator: $foo")
    assert err.value.__cause__ is not None  # chained to mongomock's pymongo error


def test_an_operand_of_the_wrong_shape_is_a_refused_filter(people):
    with pytest.raises(InputError) as err:
        list(people["customers"].find({"$and": 5}))
    assert str(err.value) == REFUSED.format("'int' object is not iterable")


def test_a_bad_regex_is_named_with_its_pattern(people):
    with pytest.raises(InputError) as err:
        list(people["customers"].find({"region": {"$regex": "(unclosed"}}))
    assert str(err.value) == ("$regex '(unclosed' is not a valid pattern (missing ) at position 9); escape special "
                              "characters such as ( [ + with a backslash")


def test_a_write_lock_held_by_another_process_is_store_busy(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "store.sqlite"
    store = EmbeddedStore(path)
    coll = store["customers"]
    coll.insert_one({"_id": "a"})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        for write in (lambda: coll.insert_one({"_id": "b"}), lambda: coll.update_one({"_id": "a"}, {"$set": {"x": 1}})):
            with pytest.raises(StoreBusy) as err:
                write()
            assert str(err.value) == (f"the embedded store {path} is locked by another process that is writing to it "
                                      "(waited 0.05 s); try again when it has finished")
        assert coll.find_one({"_id": "a"}) == {"_id": "a"}  # WAL: readers are not blocked
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


def test_a_damaged_file_is_a_store_error_naming_the_operation(people, tmp_path):
    path = tmp_path / "store.sqlite"
    people.close()
    data = bytearray(path.read_bytes())
    for offset in range(8192, len(data) - 4096, 4096):  # every page but the schema's
        data[offset + 100:offset + 400] = b"\xff" * 300
    path.write_bytes(bytes(data))
    for side in tmp_path.glob("store.sqlite-*"):
        side.unlink()
    store = EmbeddedStore(path)
    # SQLite finds the damage in its pages, or reads back cells whose document bytes it cannot tell are damaged
    reasons = {"database disk image is malformed", "a stored document is damaged: invalid message size"}
    try:
        with pytest.raises(StoreError) as err:
            list(store["customers"].find({"age": 21}))
        assert str(err.value) in {f"find in customers: the embedded store failed ({r})" for r in reasons}
        with pytest.raises(StoreError) as err:
            store.changes("customers")
        assert str(err.value) in {f"change feed of customers: the embedded store failed ({r})" for r in reasons}
    finally:
        store.close()


def test_damaged_document_bytes_are_a_store_error_naming_the_operation(tmp_path):
    import sqlite3

    store = EmbeddedStore(tmp_path / "store.sqlite")
    store["customers"].insert_many([{"_id": "a", "age": 30}])
    start = store.feed_position("customers")
    store["customers"].update_one({"_id": "a"}, {"$set": {"age": 31}})
    store.close()
    raw = sqlite3.connect(tmp_path / "store.sqlite")
    raw.execute("UPDATE c_customers SET doc = ?", (b"\x05\x00\x00\x00\x01",))
    raw.commit()
    raw.close()
    store = EmbeddedStore(tmp_path / "store.sqlite")
    try:
        for read, what in ((lambda: store.changes("customers", after=start), "change feed of customers"),
                           (lambda: list(store["customers"].find({"age": 31})), "find in customers")):
            with pytest.raises(StoreError) as err:
                read()
            assert str(err.value).startswith(f"{what}: the embedded store failed (a stored document is damaged: ")
    finally:
        store.close()
