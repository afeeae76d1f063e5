"""Embedded reads stream in bounded pages: an export of a large result holds one page, not every row."""

from __future__ import annotations

import tracemalloc

import pytest

from custscore.store import reading
from custscore.store.embedded import EmbeddedStore
from custscore.store.query import iter_customer_frames

DOCS = 100_000
BOUND = 8_000_000  # bytes; holding 100k small documents (or their rows) takes several times this


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    store = EmbeddedStore(tmp_path_factory.mktemp("big") / "store.sqlite")
    coll = store["customers"]
    for start in range(0, DOCS, 25_000):
        coll.insert_many([{"_id": i, "n": i % 10, "s": f"row {i}"} for i in range(start, start + 25_000)])
    yield store
    store.close()


def _peak(consume) -> int:
    tracemalloc.start()
    try:
        consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_a_large_result_stays_under_a_fixed_memory_bound(big):
    coll = big["customers"]
    seen = [0]

    def stream():
        for _ in coll.find({"n": {"$gte": 0}}, {"s": 1}):
            seen[0] += 1

    streamed = _peak(stream)
    listed = _peak(lambda: list(coll.find({"n": {"$gte": 0}}, {"s": 1})))
    assert seen[0] == DOCS
    assert streamed < BOUND < listed  # the bound is one a list-all read exceeds


def test_limit_and_skip_apply_while_streaming_across_pages(big, monkeypatch):
    monkeypatch.setattr(reading, "PAGE_MOST", 64)  # many small pages
    coll = big["customers"]
    assert [d["_id"] for d in coll.find({"n": 3}, skip=2, limit=5)] == [23, 33, 43, 53, 63]
    assert [d["_id"] for d in coll.find({"n": 3}, skip=9_990)] == [99_903 + 10 * i for i in range(10)]
    assert [d["_id"] for d in coll.find({}, skip=99_998)] == [99_998, 99_999]
    assert [d["_id"] for d in coll.find({"_id": {"$in": [5, 70_000, 3]}})] == [3, 5, 70_000]


def test_a_query_export_pulls_documents_as_it_writes_tables(big):
    pulled = [0]
    real = big["customers"]

    class Counting:
        def __init__(self, coll):
            self._coll = coll

        def find(self, *args, **kwargs):
            for doc in self._coll.find(*args, **kwargs):
                pulled[0] += 1
                yield doc

        def __getattr__(self, name):
            return getattr(self._coll, name)

    class View:
        backend = big.backend

        def collection(self, name):
            return Counting(big.collection(name))

        def __getitem__(self, name):
            return self.collection(name)

    frames = iter_customer_frames(View(), {}, limit=0, fields=["n"], timeout=0, chunk_rows=1000)
    first = next(frames)
    assert len(first) == 1000 and pulled[0] <= 1001  # the first table before the rest is read
    assert sum(len(f) for f in frames) + len(first) == real.count()
