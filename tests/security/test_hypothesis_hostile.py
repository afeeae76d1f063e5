"""Hypothesis-generated hostile input through every entry point: nothing may traceback, stop the worker or run code.

Entry points: validated loading (ingest/insert), the CLI's insert, documents written straight into the store
followed by the worker, queries, SQL and registry records. Each test asserts the outcome a user relies on:
good documents stored and scored, bad ones refused or dead-lettered with a reason, and every failure a
CustscoreError (one red line on the CLI).
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custscore.config import Settings
from custscore.errors import CustscoreError
from custscore.models.registry import load_model
from custscore.scorer.deadletters import list_dead_letters
from custscore.scorer.worker import Worker
from custscore.store import limits, open_store
from custscore.store.loading import load_customers
from custscore.store.query import query_customers
from custscore.store.schema import CUSTOMERS, MODELS
from custscore.store.sql import run_sql
from tests.scorer.fakes import FakeRegistry
from tests.security.cli_helpers import assert_no_traceback, cli
from tests.security.helpers import GOOD, good, nested

pytestmark = pytest.mark.slow  # about 30 s in all; derandomized, so every run tries the same inputs

FAST = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SLOW_FAST = settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

NASTY_TEXT = st.sampled_from(["", " ", "a\x00b", "a\ud800", "\udcff", "$where", "a.b", ".", "$", "x" * 300,
                              "'; DROP TABLE customers; --", "^(\\w+\\s?)+!$", "(unclosed", "ünïcødé", "\n\t"])
KEYS = st.one_of(st.text(max_size=6), NASTY_TEXT)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), NASTY_TEXT,
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=8)
DEEP = st.integers(90, 700).map(nested)
FIELDS = st.sampled_from(["customer_id", "_id", "signup_date", "age", "income", "region", "channel",
                          "support_tickets", "customer_satisfaction", "purchase_history", "score", "updated_at",
                          "_truth", "notes"])


@st.composite
def hostile_customer(draw, i: int = 0):
    """A customer document with one to three fields broken in hostile ways (or a non-document)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(VALUES)
    cid = f"H{draw(st.integers(0, 10**6))}"
    doc = {"_id": cid, "customer_id": cid, **GOOD}
    for _ in range(draw(st.integers(1, 3))):
        field = draw(FIELDS | KEYS)
        doc[field] = draw(VALUES | DEEP)
    return doc


def _memory(tmp_path_factory):
    return open_store(Settings.build(mongo_uri="memory:", home=tmp_path_factory.mktemp("h"), environ={}))


@FAST
@given(bad=st.lists(hostile_customer(), min_size=1, max_size=5), n_good=st.integers(1, 4))
def test_loading_refuses_each_bad_document_alone_and_stores_the_good_ones(tmp_path_factory, bad, n_good):
    store = _memory(tmp_path_factory)
    goods = [{**good(f"G{i}"), "signup_date": "2023-05-01"} for i in range(n_good)]
    docs = [d for pair in zip(bad, goods + [None] * len(bad), strict=False) for d in pair if d is not None] + goods[len(bad):]
    report = load_customers(store, docs, batch_size=3)
    stored = {d["_id"] for d in store.collection(CUSTOMERS).find({}, {"_id": 1})}
    assert {f"G{i}" for i in range(n_good)} <= stored
    assert report.rejected + report.inserted + report.updated + report.skipped + report.duplicates == len(docs)
    assert all(p.reason for p in report.problems)
    store.close()


@FAST
@given(docs=st.lists(hostile_customer(), min_size=1, max_size=6), n_good=st.integers(1, 4))
def test_documents_written_around_validation_never_stop_the_worker(tmp_path_factory, docs, n_good):
    store = _memory(tmp_path_factory)
    coll = store.collection(CUSTOMERS)
    written = set()
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        doc = {**doc, "_id": f"B{i}"}  # a raw app write: any content under a usable id
        try:
            with limits_relaxed():
                coll.insert_one(doc)
            written.add(doc["_id"])
        except CustscoreError:
            pass  # even MongoDB would refuse it (a NUL key, an int past 8 bytes, ...)
    coll.insert_many([good(f"G{i}") for i in range(n_good)])
    registry = FakeRegistry()
    Worker(store, registry.loader, registry.probe, batch_size=4).run_once()
    scored = {d["_id"] for d in coll.find({"score": {"$exists": True}}, {"_id": 1})}
    lettered = {d["doc_id"] for d in list_dead_letters(store, limit=0)}
    assert {f"G{i}" for i in range(n_good)} <= scored
    assert written <= scored | lettered  # every document is scored or dead-lettered, none stalls the batch
    assert all(d["reason"] for d in list_dead_letters(store, limit=0))
    store.close()


class limits_relaxed:  # noqa: N801 - used like a function
    """Let a test write what an app writing to MongoDB directly could (deeper than custscore allows)."""

    def __enter__(self):
        self.saved = limits.MAX_NESTING
        limits.MAX_NESTING = 100_000

    def __exit__(self, *exc):
        limits.MAX_NESTING = self.saved


FILTERS = st.recursive(
    st.dictionaries(KEYS | st.sampled_from(["age", "score.risk", "region"]), VALUES, max_size=2),
    lambda inner: st.dictionaries(st.sampled_from(["$and", "$or", "$nor", "$not", "$regex", "$in", "$gt",
                                                   "$elemMatch", "$exists", "$where", "$expr", "$options",
                                                   "region", "age"]),
                                  st.lists(inner, max_size=2) | inner | VALUES, max_size=2),
    max_leaves=6,
)


@FAST
@given(spec=FILTERS | DEEP, limit=st.integers(-5, 2**64), timeout=st.floats(-1, 3) | st.none())
def test_any_query_returns_rows_or_one_custscore_error(tmp_path_factory, spec, limit, timeout):
    store = _memory(tmp_path_factory)
    store.collection(CUSTOMERS).insert_many([good("A"), {**good("B"), "region": "south"}])
    try:
        frame = query_customers(store, spec, limit=limit, timeout=timeout if timeout is None else min(timeout, 2))
    except CustscoreError as exc:
        assert str(exc)
    else:
        assert len(frame) <= 2
    store.close()


SQL = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["SELECT hex(fts3_tokenizer('simple'))", "SELECT load_extension('x')", "ATTACH 'x' AS y",
                     "SELECT * FROM customers; DROP TABLE customers", "PRAGMA writable_schema=1",
                     "SELECT zeroblob(2000000000)", "VACUUM INTO '/tmp/x'", "SELECT 9223372036854775808 + 1"]),
    st.builds(lambda f, a: f"SELECT {f}({a}) FROM customers", st.sampled_from(
        ["count", "sum", "hex", "group_concat", "fts3_tokenizer", "readfile", "edit", "printf", "json_extract"]),
        st.sampled_from(["*", "age", "region", "'x'", "1, 2"])),
)


@FAST
@given(query=SQL)
def test_any_sql_returns_rows_or_one_custscore_error(tmp_path_factory, query):
    path = tmp_path_factory.mktemp("sql") / "mirror.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (_id TEXT, age INTEGER, region TEXT)")
        conn.execute("INSERT INTO customers VALUES ('A', 40, 'north')")
    conn.close()
    try:
        run_sql(path, query, limit=10, timeout=2)
    except CustscoreError as exc:
        assert str(exc)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 1  # nothing written
    conn.close()


RECORDS = st.fixed_dictionaries({
    "task": st.sampled_from(["churn", "satisfaction"]) | KEYS,
    "version": st.sampled_from(["../../../evil", "/etc/passwd", "20240101-000000-abcdef", "..", "a/../../b"]) | KEYS,
    "aliases": st.just(["production"]),
    "manifest_sha256": st.text(max_size=64) | st.none(),
    "artifacts": st.lists(st.fixed_dictionaries({"file": KEYS | st.sampled_from(["../x", "/etc/passwd", "ok"]),
                                                 "sha256": st.text(max_size=8), "bytes": st.integers(-1, 10)}),
                          max_size=2) | VALUES,
})


@SLOW_FAST
@given(record=RECORDS)
def test_any_registry_record_is_refused_or_loaded_but_never_escapes(tmp_path_factory, record):
    home = tmp_path_factory.mktemp("reg")
    settings_ = Settings.build(mongo_uri="memory:", home=home, environ={})
    store = open_store(settings_)
    try:
        store[MODELS].insert_one({"_id": "x", **record})
    except CustscoreError:  # the store refuses it (e.g. a lone surrogate): nothing to load
        store.close()
        return
    task = record["task"] if isinstance(record["task"], str) else "churn"
    try:
        load_model(store, settings_, task, "production")
    except CustscoreError as exc:
        assert str(exc)
    store.close()


LINES = st.lists(st.one_of(st.builds(lambda d: __import__("json").dumps(d, default=str), VALUES),
                           st.text(max_size=30), st.sampled_from(["[" * 3000, '{"a": 1' + "0" * 5000 + "}"])),
                 min_size=1, max_size=5)


@SLOW_FAST
@given(lines=LINES)
def test_insert_from_the_command_line_never_tracebacks(tmp_path_factory, lines):
    home = tmp_path_factory.mktemp("cli")
    good_line = '{"customer_id": "OK", "signup_date": "2024-01-01"}'
    result = cli(home, "insert", "-", input="\n".join([good_line, *(ln.replace("\n", " ") for ln in lines)]) + "\n")
    assert_no_traceback(result)
    with open_store(Settings.build(home=home, environ={})) as store:
        assert store.collection(CUSTOMERS).find_one({"_id": "OK"}) is not None
