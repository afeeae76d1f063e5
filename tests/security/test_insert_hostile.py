"""Issue 13 items 2, 7 and 9: `insert` never tracebacks, refuses each bad document alone, streams, counts truly."""

from __future__ import annotations

import io
import json

import pytest

from custscore.config import Settings
from custscore.scorer.document_stream import iter_documents
from custscore.scorer.inserting import insert_customers
from custscore.store import open_store
from custscore.store.schema import CUSTOMERS
from tests.security.cli_helpers import assert_no_traceback, cli

GOOD = {"customer_id": "OK1", "signup_date": "2024-05-31", "age": 41}


def _stored(home) -> list:
    with open_store(Settings.build(home=home, environ={})) as store:
        return sorted(d["_id"] for d in store.collection(CUSTOMERS).find({}, {"_id": 1}))


@pytest.mark.parametrize("line, field, reason", [
    ("5", "(document)", "is not an object with fields"),
    ('{"customer_id": "S1", "signup_date": "2024-01-01", "region": "a\\ud800"}', "region",
     "is not valid UTF-8 text (a lone surrogate)"),
    ('{"customer_id": "I1", "signup_date": "2024-01-01", "income": 1' + "0" * 400 + "}", "income",
     "is too large an integer"),
    ('{"customer_id": "I2", "signup_date": "2024-01-01", "x": 1' + "0" * 5000 + "}", "line 2",
     "holds an integer too long to read; store it as text"),
    ("[" * 600 + "]" * 600, "(document)", "is not an object with fields"),
    ('{"customer_id": "D1", "signup_date": "2024-01-01", "x": ' + '{"a": ' * 600 + "1" + "}" * 601, "x.a.a",
     "is nested more than 100 levels deep"),
    ('{"customer_id": "D2", "x": ' + "[" * 5000 + "]" * 5000 + "}", "line 2", "is nested too deeply to read"),
    ('{"customer_id": "N1", "signup_date": "2024-01-01", "a\\u0000b": 1}', "a\\x00b",
     "field names may not contain a NUL byte"),
    ('{"customer_id": C2}', "line 2", "is not valid JSON (Expecting value at column 17)"),
])
def test_a_bad_document_is_refused_alone_and_the_good_line_beside_it_goes_in(tmp_path, line, field, reason):
    text = json.dumps(GOOD) + "\n" + line + "\n" + json.dumps({**GOOD, "customer_id": "OK2"}) + "\n"
    result = cli(tmp_path, "insert", "-", input=text)
    assert_no_traceback(result)
    assert result.exit_code == 1
    refused = [ln for ln in result.output.splitlines() if ln.startswith("refused ")]
    assert len(refused) == 1 and refused[0].startswith("refused row 2: "), result.output
    assert field in refused[0] and reason in refused[0], refused[0]
    assert "inserted 2, updated 0, unchanged 0, duplicate ids 0, refused 1" in result.output
    assert _stored(tmp_path) == ["OK1", "OK2"]


def test_reinserting_stored_customers_counts_them_unchanged_not_inserted(tmp_path):
    docs = "".join(json.dumps({**GOOD, "customer_id": f"C{i}"}) + "\n" for i in range(30))
    first = cli(tmp_path, "insert", "-", input=docs)
    assert "inserted 30, updated 0, unchanged 0, duplicate ids 0, refused 0" in first.output
    again = cli(tmp_path, "insert", "-", input=docs)
    assert again.exit_code == 0, again.output
    assert "inserted 0, updated 0, unchanged 30, duplicate ids 0, refused 0" in again.output
    changed = docs.replace('"age": 41', '"age": 42', 5)
    assert "inserted 0, updated 5, unchanged 25," in cli(tmp_path, "insert", "-", input=changed).output


def test_86_documents_sharing_one_id_are_one_insert_and_85_duplicates(tmp_path):
    docs = "".join(json.dumps({**GOOD, "customer_id": "SAME", "age": 20 + i % 50}) + "\n" for i in range(86))
    result = cli(tmp_path, "insert", "-", input=docs)
    assert result.exit_code == 0, result.output
    assert "inserted 1, updated 0, unchanged 0, duplicate ids 85, refused 0" in result.output
    assert _stored(tmp_path) == ["SAME"]


def test_duplicates_across_batches_count_once(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    from custscore.store.loading import load_customers

    docs = [{**GOOD, "customer_id": f"C{i % 7}", "age": 30 + i} for i in range(20)]
    report = load_customers(store, docs, batch_size=3, collect_ids=True)
    assert (report.inserted, report.updated, report.skipped, report.duplicates) == (7, 0, 0, 13)
    assert report.stored_ids == [f"C{i}" for i in range(7)]
    assert store.collection(CUSTOMERS).find_one({"_id": "C6"})["age"] == 43  # the last row (i = 13) wins
    store.close()


def test_a_broken_array_keeps_what_came_before_and_names_line_and_column(tmp_path):
    text = '[\n {"customer_id": "A1", "signup_date": "2024-01-01"},\n {"customer_id" "A2"}\n]'
    result = cli(tmp_path, "insert", "-", input=text)
    assert result.exit_code == 1
    assert ("refused row 2: stdin line 3 column 17: is not valid JSON (Expecting ':' delimiter); the rest of the "
            "file is not read") in result.output
    assert _stored(tmp_path) == ["A1"]


def test_arrays_pretty_objects_and_lines_are_read_one_document_at_a_time(monkeypatch):
    from custscore.scorer import document_stream

    monkeypatch.setattr(document_stream, "CHUNK_CHARS", 16)  # documents straddle many buffer refills
    docs = [{"customer_id": f"C{i}", "n": "x" * (i * 7), "k": [i, {"v": i}]} for i in range(40)]
    assert list(iter_documents(io.StringIO(json.dumps(docs, indent=2)))) == docs
    assert list(iter_documents(io.StringIO("\n\n".join(json.dumps(d, indent=1) for d in docs)))) == docs
    assert list(iter_documents(io.StringIO("\n".join(json.dumps(d) for d in docs)))) == docs


class CountingText(io.StringIO):
    """A text stream that knows how many characters its reader has taken so far."""

    taken = 0

    def read(self, size=-1):
        text = super().read(size)
        self.taken += len(text)
        return text

    def readline(self, size=-1):
        line = super().readline(size)
        self.taken += len(line)
        return line

    def __next__(self):
        line = super().__next__()
        self.taken += len(line)
        return line


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_insert_reads_a_file_one_batch_ahead_at_most(tmp_path, monkeypatch, layout):
    """The reader is consumed batch by batch: when document i is validated, at most one batch more was read."""
    from bisect import bisect_right

    from custscore.scorer import document_stream
    from custscore.store import loading

    monkeypatch.setattr(document_stream, "CHUNK_CHARS", 1024)
    n, batch = 12_000, 5_000  # batch: load_customers' default, which insert uses
    texts = [json.dumps({**GOOD, "customer_id": f"C{i:06d}"}) for i in range(n)]
    head, sep, tail = ("", "\n", "\n") if layout == "lines" else ("[", ",\n", "]")
    starts, at = [], len(head)
    for t in texts:
        starts.append(at)
        at += len(t) + len(sep)
    stream = CountingText(head + sep.join(texts) + tail)
    ahead = {"most": 0}
    original = loading.validate_customer

    def validating(raw, i, **kw):  # i counts from 1
        begun = bisect_right(starts, stream.taken - 1)  # documents whose first character has been read
        ahead["most"] = max(ahead["most"], begun - i)
        return original(raw, i, **kw)

    monkeypatch.setattr(loading, "validate_customer", validating)
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    report = insert_customers(store, iter_documents(stream))  # what `custscore insert FILE` calls
    assert report.inserted == n
    # one batch, plus the documents in one 1 KB read; reading the whole file first puts all 12,000 ahead
    assert ahead["most"] <= batch + 1024 // len(texts[0]) + 1, ahead
    store.close()


def test_a_one_line_array_is_streamed_and_its_error_column_is_exact(monkeypatch):
    from custscore.scorer import document_stream

    monkeypatch.setattr(document_stream, "CHUNK_CHARS", 8)
    text = json.dumps([{"customer_id": f"C{i}"} for i in range(30)])
    broken = text[:-1] + ', {"customer_id" 1}]'
    *docs, problem = list(iter_documents(io.StringIO(broken)))
    assert docs == [{"customer_id": f"C{i}"} for i in range(30)]
    column = broken.index('{"customer_id" 1}') + len('{"customer_id" ') + 1
    assert problem.field == f"input line 1 column {column}"


def test_simulate_refuses_more_customers_than_it_can_hold_before_writing_anything(tmp_path):
    from tests.security.cli_helpers import assert_one_red_line

    result = cli(tmp_path, "simulate", "--customers", "100000000")
    assert_one_red_line(result, "--customers 100,000,000 is more than the 2,000,000 one simulate run may make")
    assert _stored(tmp_path) == []
