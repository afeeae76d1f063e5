"""custscore insert: reading JSON documents, validated inserts, and waiting for the scorer's write-back."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest

from custscore.config import Settings
from custscore.errors import CustscoreError, InputError
from custscore.scorer import inserting
from custscore.scorer.inserting import document_hash, insert_customers, read_documents, wait_for_scores
from custscore.store import open_store

GOOD = {"customer_id": "C1", "signup_date": "2024-05-31", "age": 41, "region": "north"}


@pytest.fixture
def store():
    st = open_store(Settings.build(mongo_uri="memory:", environ={}))
    yield st
    st.close()


def write_fake_score(store, customer_id: str) -> None:
    """What the worker does: a score whose doc_hash matches the current document."""
    doc = store["customers"].find_one({"_id": customer_id})
    store["customers"].update_one(
        {"_id": customer_id}, {"$set": {"score": {"risk": "high", "churn_probability": 0.8, "doc_hash": document_hash(doc)}}}
    )


# ---------------------------------------------------------------- reading


def test_reads_a_json_array_an_object_and_json_lines(tmp_path):
    array = tmp_path / "a.json"
    array.write_text('[{"customer_id": "C1"},\n {"customer_id": "C2"}]')
    obj = tmp_path / "o.json"
    obj.write_text('{\n  "customer_id": "C3",\n  "age": 30\n}\n')
    lines = tmp_path / "l.jsonl"
    lines.write_text('{"customer_id": "C4"}\n\n{"customer_id": "C5"}\n')
    assert [d["customer_id"] for d in read_documents(array)] == ["C1", "C2"]
    assert read_documents(str(obj)) == [{"customer_id": "C3", "age": 30}]
    assert [d["customer_id"] for d in read_documents(lines)] == ["C4", "C5"]


def test_reads_stdin_and_open_streams(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"customer_id": "C1"}\n{"customer_id": "C2"}\n'))
    assert len(read_documents("-")) == 2
    assert read_documents(io.StringIO('[{"customer_id": "C9"}]')) == [{"customer_id": "C9"}]


def test_a_bad_line_is_named_with_its_number(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text('{"customer_id": "C1"}\n{"customer_id": C2}\n')
    with pytest.raises(InputError) as err:
        read_documents(path)
    assert str(err.value) == "new.jsonl line 2 is not valid JSON (Expecting value at column 17); fix or remove the line"


def test_a_broken_array_names_line_and_column(tmp_path):
    path = tmp_path / "new.json"
    path.write_text('[\n {"customer_id": "C1"},\n {"customer_id" "C2"}\n]')
    with pytest.raises(InputError, match=r"^new.json line 3 column 17 is not valid JSON \(Expecting ':' delimiter\)"):
        read_documents(path)


def test_missing_and_empty_inputs_are_clear(tmp_path):
    with pytest.raises(InputError, match="does not exist; give the path of a JSON or JSON-lines file, or - for stdin"):
        read_documents(tmp_path / "nope.json")
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(InputError, match="^empty.json holds no documents"):
        read_documents(empty)


# ---------------------------------------------------------------- inserting


def test_good_documents_go_in_and_bad_ones_are_reported_with_field_and_reason(store):
    docs = [
        GOOD,
        {"customer_id": "C2", "signup_date": "2024-01-01", "age": "old"},
        {"_id": "C3", "signup_date": "2023-02-01"},
        {"signup_date": "2024-01-01", "age": 20},
        {"customer_id": "C5", "signup_date": "2024-01-01", "score": {"risk": "low"}},
    ]
    report = insert_customers(store, docs)
    assert report.inserted == 2 and report.rejected == 3
    assert [str(p) for p in report.problems] == [
        "row 2: age='old': is not a number",
        "row 4: customer_id=None: is required; add it or map a column onto it (--map SOURCE=customer_id)",
        "row 5: score={'risk': 'low'}: is computed by custscore; drop this field",
    ]
    assert sorted(d["_id"] for d in store["customers"].find()) == ["C1", "C3"]
    stored = store["customers"].find_one({"_id": "C1"})
    assert stored["signup_date"] == dt.datetime(2024, 5, 31) and stored["purchase_history"]["orders"] == 0
    assert store["customers"].find_one({"_id": "C3"})["customer_id"] == "C3"


# ---------------------------------------------------------------- waiting


def test_wait_returns_as_soon_as_the_worker_writes_the_score(tmp_path, monkeypatch):
    uri = f"embedded:{tmp_path / 'store.sqlite'}"
    store = open_store(Settings.build(mongo_uri=uri, home=tmp_path, environ={}))
    insert_customers(store, [GOOD])
    waiting = threading.Event()  # the waiter has read the store once and found no score
    written = threading.Event()
    reads_after_write: list[int] = []

    def worker_alive(st, within_s=10):  # called once per unsuccessful read
        waiting.set()
        if written.is_set():
            reads_after_write.append(1)
        return True

    monkeypatch.setattr(inserting.state, "worker_alive", worker_alive)

    def worker():  # another process's store handle, as a real worker would have
        other = open_store(Settings.build(mongo_uri=uri, home=tmp_path, environ={}))
        assert waiting.wait(20)
        write_fake_score(other, "C1")
        written.set()
        other.close()

    thread = threading.Thread(target=worker)
    thread.start()
    docs = wait_for_scores(store, ["C1"], timeout_s=60, inline=lambda ids: pytest.fail("a worker is alive"),
                           poll=(0.01, 0.1))
    thread.join()
    assert written.is_set() and docs[0]["score"]["risk"] == "high"
    assert len(reads_after_write) <= 1  # the first read after the write returns it; no waiting out a long pause
    store.close()


def test_wait_times_out_naming_how_many_are_unscored_and_the_fix(store):
    insert_customers(store, [GOOD, {**GOOD, "customer_id": "C2"}])
    write_fake_score(store, "C2")
    with pytest.raises(CustscoreError) as err:
        wait_for_scores(store, ["C1", "C2"], timeout_s=0.3)
    assert str(err.value) == (
        "1 of 2 customers are still unscored after 0.3 s (first: 'C1'); start a worker: custscore score --watch"
    )


def test_a_stale_score_does_not_count(store):
    insert_customers(store, [GOOD])
    write_fake_score(store, "C1")
    insert_customers(store, [{**GOOD, "age": 42}])  # the document changed after it was scored
    with pytest.raises(CustscoreError, match="1 of 1 customers are still unscored"):
        wait_for_scores(store, ["C1"], timeout_s=0.1)


def test_inline_scoring_is_used_when_no_worker_is_alive(store):
    insert_customers(store, [GOOD, {**GOOD, "customer_id": "C2"}])
    write_fake_score(store, "C1")
    calls = []

    def inline(ids):
        calls.append(list(ids))
        for i in ids:
            write_fake_score(store, i)

    docs = wait_for_scores(store, ["C2", "C1"], timeout_s=30, inline=inline)
    assert calls == [["C2"]]
    assert [d["_id"] for d in docs] == ["C2", "C1"]


def test_inline_that_cannot_score_points_to_dead_letters(store):
    insert_customers(store, [GOOD])
    with pytest.raises(CustscoreError) as err:
        wait_for_scores(store, ["C1"], timeout_s=30, inline=lambda ids: None)
    assert str(err.value) == "1 of 1 customers could not be scored inline (first: 'C1'); see why with: custscore dead-letters"


def test_a_recent_heartbeat_means_a_worker_is_alive(store):
    assert not inserting.state.worker_alive(store)
    beat = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    store["scorer_state"].replace_one({"_id": "worker-1-0"}, {"_id": "worker-1-0", "heartbeat_at": beat}, upsert=True)
    assert inserting.state.worker_alive(store)
    old = beat - dt.timedelta(seconds=60)
    store["scorer_state"].replace_one({"_id": "worker-1-0"}, {"_id": "worker-1-0", "heartbeat_at": old})
    assert not inserting.state.worker_alive(store)


def test_waiting_for_an_unknown_customer_fails_at_once(store):
    with pytest.raises(InputError, match="^customer 'nobody' is not in the store"):
        wait_for_scores(store, ["nobody"], timeout_s=30)
