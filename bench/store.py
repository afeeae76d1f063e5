"""Store micro-benchmarks: the embedded store against mongomock, in one process, printed as ratios.

Run: ``python bench/store.py [--docs 50000] [--budget 10]``. Each row times the same operation on the
embedded store (a file in a temporary folder) and on mongomock, over the same 50,000 documents, and
prints both rates and their ratio (the median of alternating rounds):

* ``find_one`` by ``_id`` and ``update_one`` by ``_id`` (goal: >= 1000x for the update), and the update against
  the same durable write straight on sqlite3 (the floor any store over SQLite pays); the update again on a
  ``memory:`` store, which like mongomock keeps nothing on disk (like for like, not the durable figure);
* a numeric filter on a field without an index (goal: >= 10x);
* a read of events by ``customer_id`` for 256 customers: ``find_in`` (one SQL ``IN`` on the embedded
  store) against ``find({"customer_id": {"$in": ...}})``, with the row cache warm (the batches repeat customers,
  as a long-lived worker re-reads them) and cleared before each read (every row decoded);
* every event read into columns with ``find_columns`` (what training reads) against ``find`` with a projection,
  both on the embedded store;
* streaming 100,000 small documents: peak traced memory of ``find`` against holding them all in a list.

``bench/score.py`` may call :func:`store_paths` for its ``store`` phase.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from itertools import count
from pathlib import Path

from custscore.config import Settings
from custscore.store import open_store
from custscore.store.reading import rows_cached

SEED = 7
DOCS = 50_000
OPS = 200
BUDGET_S = 10.0
STREAM_DOCS = 100_000
ROUNDS = 5
MIN_ROUND_S = 0.25  # shortest timed round of either side


def _rate(fn: Callable[[object], object], ops: Sequence, budget_s: float, min_s: float = MIN_ROUND_S) -> float:
    """Operations per second over ``ops`` (taken again from the start until ``min_s`` seconds have passed, so a
    fast side is not timed over a millisecond of cold caches), stopping after ``budget_s`` seconds."""
    t0 = time.perf_counter()
    done = 0
    while True:
        for op in ops:
            fn(op)
            done += 1
            if time.perf_counter() - t0 > budget_s:
                return done / (time.perf_counter() - t0)
        if time.perf_counter() - t0 >= min_s:
            return done / (time.perf_counter() - t0)


def _paired(ours: Callable[[object], object], theirs: Callable[[object], object], ops: list, budget_s: float,
            rounds: int = ROUNDS) -> tuple[float, float]:
    """Median rates of both sides, measured in alternating rounds over the same ops.

    The machine is shared: timing one side and then the other lets a change of load land on one
    side only. Alternating rounds and taking the median ratio keeps the comparison fair.
    """
    size = max(1, len(ops) // rounds)
    pairs = []
    for r in range(rounds):
        chunk = ops[r * size:(r + 1) * size] or ops[:size]
        pairs.append((_rate(ours, chunk, budget_s / rounds), _rate(theirs, chunk, budget_s / rounds)))
    pairs.sort(key=lambda p: p[0] / p[1])
    return pairs[len(pairs) // 2]


def _report(row: tuple[str, float, float], docs: int) -> None:
    name, ours, theirs = row
    print(f"store {name}, {docs:,} docs: embedded {ours:,.3g}/s, mongomock {theirs:,.3g}/s, {ours / theirs:,.1f}x "
          f"(median of {ROUNDS} alternating rounds)",
          flush=True)


def _sqlite_floor(tmp: Path, rows_in: list[dict]) -> Callable[[str], None]:
    """``update_one`` by ``_id`` written straight on sqlite3 with the embedded store's table layout (rows in insertion
    order, a unique ``id`` and an indexed change sequence ``seq`` for the feed) and guarantees (WAL with
    ``synchronous=NORMAL``, one ``BEGIN IMMEDIATE`` transaction per write, the global sequence bumped): the
    document read, decoded, changed and encoded. What no Python above sqlite3 can beat with this layout."""
    import sqlite3

    import bson

    conn = sqlite3.connect(tmp / "floor.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (pos INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, seq INTEGER NOT NULL, "
                 "version INTEGER NOT NULL, doc BLOB NOT NULL)")
    conn.execute("CREATE INDEX t__seq ON t (seq)")
    conn.execute("CREATE TABLE seq (id INTEGER PRIMARY KEY, seq INTEGER)")
    conn.execute("INSERT INTO seq VALUES (1, 0)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (id, seq, version, doc) VALUES (?, ?, 0, ?)",
                     [(d["_id"].encode(), n, bson.encode(d)) for n, d in enumerate(rows_in)])
    conn.execute("COMMIT")

    def update(i: str) -> None:
        key = i.encode()
        conn.execute("BEGIN IMMEDIATE")
        doc = bson.decode(conn.execute("SELECT doc FROM t WHERE id = ?", (key,)).fetchone()[0])
        doc["y"] = i + "f"
        (last,) = conn.execute("UPDATE seq SET seq = seq + 1 WHERE id = 1 RETURNING seq").fetchone()
        conn.execute("UPDATE t SET seq = ?, version = version + 1, doc = ? WHERE id = ?", (last, bson.encode(doc), key))
        conn.execute("COMMIT")

    return update


def store_paths(tmp: Path, docs: int = DOCS, budget_s: float = BUDGET_S) -> list[tuple[str, float, float]]:
    """Time the store paths on the embedded store and mongomock; print and return (name, ours, theirs) rows."""
    import mongomock

    rng = random.Random(SEED)
    rows_in = [{"_id": f"C{i:06d}", "n": rng.randint(0, 999), "x": rng.random(), "s": f"s{i % 97}"}
               for i in range(docs)]
    events = [{"customer_id": f"C{rng.randrange(docs // 10):06d}", "amount": rng.random() * 100, "ts": i}
              for i in range(docs)]
    store = open_store(Settings.build(mongo_uri=f"embedded:{tmp / 'paths.sqlite'}", home=tmp, environ={}))
    embedded, embedded_events = store["t"], store["events"]
    embedded.insert_many([dict(d) for d in rows_in])
    embedded_events.insert_many([dict(e) for e in events])
    embedded_events.create_index("customer_id")  # as on mongomock's side below, and in the store custscore makes
    client = mongomock.MongoClient()
    mock, mock_events = client.db.t, client.db.events
    mock.insert_many([dict(d) for d in rows_in])
    mock_events.insert_many([dict(e) for e in events])
    mock_events.create_index("customer_id")
    picks = [f"C{rng.randrange(docs):06d}" for _ in range(OPS)]
    ticks = count()  # every update writes a new value: none is a no-op
    batches = [[f"C{rng.randrange(docs // 10):06d}" for _ in range(256)] for _ in range(20)]
    fields = {"customer_id": 1, "amount": 1, "ts": 1}
    # the fixtures (100k+ documents on each side) are long-lived: keep the cyclic GC from re-walking them
    # during every timed call, which would charge both sides for the benchmark's own setup
    gc.collect()
    gc.freeze()

    cases = [
        ("find_one by _id", lambda c: (lambda i: c.find_one({"_id": i})), picks, mock),
        ("update_one by _id", lambda c: (lambda i: c.update_one({"_id": i}, {"$set": {"y": next(ticks)}})), picks,
         mock),
        ("numeric filter, no index (n >= 990)", lambda c: (lambda _: list(c.find({"n": {"$gte": 990}}))),
         range(15), mock),
    ]
    out = []
    for name, make, ops, reference in cases:
        out.append((name, *_paired(make(embedded), make(reference), list(ops), budget_s)))
        _report(out[-1], docs)
    floor = _sqlite_floor(tmp, rows_in)
    floor_picks = [f"C{rng.randrange(docs):06d}" for _ in range(OPS)]  # fresh ids: every write changes a document
    ours, bare = _paired(lambda i: embedded.update_one({"_id": i}, {"$set": {"y": next(ticks)}}), floor, floor_picks,
                         budget_s)
    mock_rate = next(r[2] for r in out if r[0] == "update_one by _id")
    print(f"store update_one by _id against raw sqlite3 doing the same durable write: embedded {ours:,.3g}/s, "
          f"sqlite3 {bare:,.3g}/s ({100 * ours / bare:.0f}% of it); 1000x mongomock would need "
          f"{1000 * mock_rate:,.3g}/s, {1000 * mock_rate / bare:.1f}x the raw floor", flush=True)
    memory_store = open_store(Settings.build(mongo_uri="memory:", home=tmp, environ={}))
    in_memory = memory_store["t"]
    in_memory.insert_many([dict(d) for d in rows_in])
    gc.collect()
    gc.freeze()
    out.append(("update_one by _id, memory: store (no file, as mongomock)",
                *_paired(lambda i: in_memory.update_one({"_id": i}, {"$set": {"y": next(ticks)}}),
                         lambda i: mock.update_one({"_id": i}, {"$set": {"y": next(ticks)}}), picks, budget_s)))
    _report(out[-1], docs)
    memory_store.close()
    ours, theirs = _paired(lambda ids: embedded_events.find_in("customer_id", ids, list(fields)),
                           lambda ids: list(mock_events.find({"customer_id": {"$in": ids}}, fields)), batches, budget_s)
    out.append(("events of 256 customers (find_in, row cache warm)", ours, theirs))
    _report(out[-1], docs)
    cache = rows_cached(store.engine)

    def cold(ids: list) -> dict:
        cache.clear()  # every row decoded, as on a worker's first read of these customers
        return embedded_events.find_in("customer_id", ids, list(fields))

    ours, theirs = _paired(cold, lambda ids: list(mock_events.find({"customer_id": {"$in": ids}}, fields)), batches,
                           budget_s)
    out.append(("events of 256 customers (find_in, row cache cleared before each)", ours, theirs))
    _report(out[-1], docs)
    ours, projected = _paired(lambda _: embedded_events.find_columns(list(fields)),
                              lambda _: list(embedded_events.find({}, fields)), list(range(5)), budget_s)
    print(f"store every event as columns (find_columns, training's read) against find with a projection, both "
          f"embedded: {ours * docs:,.3g} vs {projected * docs:,.3g} events/s ({ours / projected:.1f}x)", flush=True)
    store.close()
    gc.unfreeze()
    return out


def streaming_memory(tmp: Path, docs: int = STREAM_DOCS) -> tuple[int, int]:
    """Peak traced bytes of streaming ``docs`` small documents through ``find``, and of listing them all."""
    store = open_store(Settings.build(mongo_uri=f"embedded:{tmp / 'stream.sqlite'}", home=tmp, environ={}))
    coll = store["t"]
    for start in range(0, docs, 20_000):
        coll.insert_many([{"_id": i, "n": i % 10, "s": f"row {i}"} for i in range(start, min(docs, start + 20_000))])
    peaks = []
    for consume in (lambda it: sum(1 for _ in it), list):
        tracemalloc.start()
        consume(coll.find({"n": {"$gte": 0}}))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    store.close()
    print(f"store streaming {docs:,} docs: peak {peaks[0] / 1e6:,.1f} MB streamed, {peaks[1] / 1e6:,.1f} MB as a "
          f"list ({peaks[1] / max(peaks[0], 1):,.1f}x)", flush=True)
    return peaks[0], peaks[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=DOCS, help="documents per collection")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per timed row at most")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        store_paths(Path(tmp_name), args.docs, args.budget)
        streaming_memory(Path(tmp_name))


if __name__ == "__main__":
    main()
