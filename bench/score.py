"""Benchmark: the batch scorer against its compute ceiling, a naive per-document scorer, streaming latency, store paths.

Usage::

    python bench/score.py                  # simulate 5,000 customers, train (fast families + recommender), score 2,000
    python bench/score.py N M              # simulate N customers, score M
    python bench/score.py N M --home DIR   # reuse a home with a trained store (copied, never changed)

Everything runs in one process, so the ratios compare like with like (absolute numbers move with the machine's
load; the ratios much less):

* ceiling: the same production models (with recommendations when a recommender is promoted) computing features,
  predictions, SHAP and recommendations for the same customers in memory (documents and events already loaded,
  in the form the worker hands them to the models); also priced without the recommender;
* end-to-end: ``Worker.run_once`` on those customers: change feed, reads, features, predictions, SHAP,
  recommendations, one write per batch, prediction records, tokens; as a first scoring (scores and today's
  prediction records removed before each round: what new customers, changes, a new day or new models cost) and,
  beside it, as a re-score whose prediction records already exist (what sessions 8-13 measured);
* naive: what tutorials do - per customer, load the models, score one row, update one document;
* streaming: a writer *process* inserts new customers at 10, 50, 100 and 200 per second, each with about three
  purchases by existing customers, while a worker process follows the feed; latency is each change's arrival
  (``updated_at`` / ``ingested_at``) to its written score, over every customer the feed asked for; then the 100 and
  200/s streams again, followed by two worker processes (``--workers 2``, one per core) instead of one;
* second worker: every customer re-scored by one worker process, then by two (``--workers 2``, disjoint halves by
  the hash of the id) on the same embedded file, models loaded before the clock starts;
* store: the embedded store against mongomock on 50,000 documents - find and update by ``_id``, and a numeric
  filter on a field without an index.

Every phase is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from custscore.config import Settings
from custscore.models import feature_reads
from custscore.models import features as F
from custscore.models.predict import HOT_PATH_NO_SHAP
from custscore.scorer.batch_events import BatchEvents
from custscore.scorer.heap import settle_long_lived
from custscore.scorer.partition import Partition
from custscore.scorer.pool import WorkerPool
from custscore.scorer.recommending import WithRecommendations, load_scoring_models, scoring_versions
from custscore.scorer.state import load_state
from custscore.scorer.worker import Worker
from custscore.store import open_store

SEED = 7
NAIVE_ROWS = 20
THROUGHPUT_ROUNDS = 3
NAIVE_BUDGET_S = 120.0
STREAM_RATES = (10.0, 50.0, 100.0, 200.0)  # new customers per second, each with ~3 purchases by existing ones
STREAM_SECONDS = 15.0
TWO_WORKER_RATES = (100.0, 200.0)  # the same streams followed by two worker processes (--workers 2)
DRAIN_BUDGET_S = 60.0
TICK_S = 0.1
STORE_DOCS = 50_000
STORE_BUDGET_S = 20.0
WORKERS_BUDGET_S = 300.0


def _settings(home: Path) -> Settings:
    return Settings.build(mongo_uri=f"embedded:{home / 'store.sqlite'}", home=home, environ={})


def _prepare(home: Path, n: int) -> None:
    from custscore.models.train import TrainOptions, train
    from custscore.recommend.train import RecommendOptions, train_recommender
    from custscore.simulator.generate import SimulationConfig
    from custscore.simulator.run import run_simulation

    settings = _settings(home)
    with open_store(settings) as store:
        run_simulation(store, SimulationConfig(n_customers=n, seed=SEED))
        train(store, settings, TrainOptions(cv=2, families=("linear", "xgboost"), seed=SEED))
        train_recommender(store, settings, RecommendOptions(seed=SEED, folds=2, ratings=False))


def _in_memory(models, docs: list[dict], events, now: dt.datetime, recommend: bool = True) -> int:
    """What the worker's models compute for a batch, from inputs already in memory in the form the worker hands
    them over (``recommend=False``: less the recommender, to price it)."""
    inner = models.models if isinstance(models, WithRecommendations) else models
    scorer = models if recommend else inner
    return len(scorer.score_documents(docs, events, now, skip_shap=HOT_PATH_NO_SHAP))


def _throughput(store, settings, m: int) -> None:
    models = load_scoring_models(store, settings)
    print(f"models: {models.versions}", flush=True)
    first = Worker(store, lambda s: models, scoring_versions, batch_size=256, max_age=0).run_once()
    print(f"warm-up: {first.scored:,} customers scored", flush=True)
    ids = [d["_id"] for d in store["customers"].find({}, projection={"_id": 1}, limit=m)]
    docs = feature_reads.read_customers(store, ids)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    from custscore.recommend.interactions import EVENT_COLUMNS

    fields = set(F.EVENT_FIELDS) | set(EVENT_COLUMNS)
    raw = list(store["events"].find({"customer_id": {"$in": ids}, "ts": {"$lte": now}},
                                    projection={k: 1 for k in fields} | {"_id": 0}))
    by_customer: dict = {}
    for e in raw:
        by_customer.setdefault(e["customer_id"], []).append(e)

    batches = []  # (customers, their events as the worker passes them: a frame from columns for a full batch)
    for i in range(0, len(docs), 256):
        part = docs[i:i + 256]
        evs = [e for d in part for e in by_customer.get(d["_id"], [])]
        batches.append((part, BatchEvents(evs, sorted(fields)).for_customers([str(d["_id"]) for d in part])))

    # as a following worker does once its models are loaded (scorer/heap.py): what is loaded and prepared stays out
    # of the collector's full passes, so neither side's rounds pay for walking the other's objects
    settle_long_lived()

    def in_memory(recommend: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        done = 0
        for part, events in batches:
            done += _in_memory(models, part, events, now, recommend)
        return (time.perf_counter() - t0) / max(1, -(-len(docs) // 256)), done / (time.perf_counter() - t0)

    def end_to_end(first: bool) -> tuple[float, int]:
        """The worker scoring ``ids`` as a first scoring (``first``: their scores and today's prediction records
        removed, so it writes both, as for new customers, changed ones, a new day or new models) or as a re-score
        whose records exist (the insert-once write then finds each record and writes nothing: sessions 8-13 measured
        only this)."""
        store["customers"].update_many({"_id": {"$in": ids}}, {"$unset": {"score": ""}})
        if first:
            store["predictions"].delete_many({"customer_id": {"$in": ids}})
        t0 = time.perf_counter()
        stats = Worker(store, lambda s: models, scoring_versions, batch_size=256, max_age=0).run_once()
        assert stats.scored >= len(ids), (stats.scored, len(ids))
        return stats.scored / (time.perf_counter() - t0), stats.batches

    # the machine is shared and its load swings: each round times the ceiling (with and without the recommender)
    # right before the worker, and the ratios are taken within a round
    rounds, rescores = [], []
    for _ in range(THROUGHPUT_ROUNDS):
        (batch_s, ceiling), (plain_batch_s, _) = in_memory(True), in_memory(False)
        e2e, n_batches = end_to_end(first=True)
        rounds.append((e2e / ceiling, e2e, ceiling, batch_s, plain_batch_s, n_batches))
        again, _ = end_to_end(first=False)
        rescores.append((again / ceiling, again))
    rounds.sort()
    rescores.sort()
    ratio, e2e, ceiling, batch_s, plain_batch_s, n_batches = rounds[len(rounds) // 2]

    t0 = time.perf_counter()
    naive_done = 0
    for cid in ids[:NAIVE_ROWS]:
        one_models = load_scoring_models(store, settings)
        [one] = one_models.score_batch(store, feature_reads.read_customers(store, [cid]), now)
        store["customers"].update_one({"_id": cid}, {"$set": {"score": one.score}})
        naive_done += 1
        if time.perf_counter() - t0 > NAIVE_BUDGET_S:
            break
    naive = naive_done / (time.perf_counter() - t0)

    print(f"ceiling (in memory, features+predict+SHAP+recommendations): {ceiling:,.0f} customers/s "
          f"(rounds: {', '.join(f'{r[2]:,.0f}' for r in rounds)})")
    if isinstance(models, WithRecommendations):
        print(f"recommendations add {batch_s * 1000 - plain_batch_s * 1000:,.0f} ms per batch of 256 in memory "
              f"({plain_batch_s * 1000:,.0f} -> {batch_s * 1000:,.0f} ms, +{100 * (batch_s / plain_batch_s - 1):.0f}%)")
    print(f"end-to-end worker, first scoring ({n_batches} batches: feed, reads, compute, one write per batch with the "
          f"prediction records): {e2e:,.0f} customers/s (rounds: {', '.join(f'{r[1]:,.0f}' for r in rounds)})")
    print(f"end-to-end worker, re-score whose prediction records exist: {rescores[len(rescores) // 2][1]:,.0f} "
          f"customers/s, / ceiling = {rescores[len(rescores) // 2][0]:.2f} "
          f"({', '.join(f'{r[0]:.2f}' for r in rescores)})")
    print(f"naive per-document scorer ({naive_done} customers): {naive:,.2f} customers/s")
    print(f"end-to-end / ceiling = {ratio:.2f}, median of {len(rounds)} rounds ({', '.join(f'{r[0]:.2f}' for r in rounds)}; "
          f"goal >= 0.8)   speed-up over naive = {e2e / naive:.0f}x "
          f"(goal >= 50x)", flush=True)


def _write_stream(location: str, rate: float, seconds: float, seed: int, written) -> None:
    """The writer process: ticks of TICK_S at ``rate`` new customers/s (plus ~3 purchases each), paced;
    ``written`` (a shared array) receives the customers and events written."""
    from custscore.simulator.run import StreamWriter

    home = Path(location)
    with open_store(_settings(home)) as store:
        writer = StreamWriter(store, seed=seed, rate=rate)
        start = time.monotonic()
        ticks = 0
        while time.monotonic() - start < seconds:
            writer.tick(TICK_S)
            written[0], written[1] = writer.written.customers, writer.written.events
            ticks += 1
            pause = start + ticks * TICK_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)


class _Followers:
    """``workers`` worker processes following the feed during a stream, each on its own partition: the
    ``WorkerPool`` of ``custscore score --watch --processes N`` (one process for N = 1, as ``score --watch`` runs)."""

    def __init__(self, settings, home: Path, workers: int):
        self.settings, self.workers = settings, workers
        self.latencies: list[tuple[float, float]] = []  # (monotonic time the batch was reported, latency ms)
        self.sizes: list[int] = []
        self._state: dict[int, tuple[bool, int]] = {}  # partition -> (caught up, backlog) at its last batch
        self._pool = WorkerPool(settings, workers, watch=True, batch_size=256, max_wait_ms=500)

    def start(self) -> None:
        """Start following; return once every worker follows the feed (models loaded, start-up scan done)."""
        self._pool.start()
        parts = [Partition(self.workers, i) for i in range(self.workers)]
        with open_store(self.settings) as store:
            while not all(load_state(store, p.state_id).get("tokens") for p in parts):  # feed positions taken
                time.sleep(0.1)
            # one change per partition: each worker's first batch says it follows (and warms its code paths)
            ids = [d["_id"] for d in store["customers"].find({}, projection={"_id": 1}, limit=200)]
            for part in parts:
                cid = next(c for c in ids if part.owns(c))
                store["customers"].update_one({"_id": cid}, {"$set": {"bench_touched": time.time()}})
        while len(self._state) < self.workers:
            self.collect(1.0)
        self.latencies.clear()
        self.sizes.clear()

    def collect(self, timeout: float) -> None:
        """Take the workers' reports (waiting up to ``timeout`` for the first one)."""
        for kind, index, stats in self._pool.reports(timeout):
            if kind == "error":
                raise SystemExit(f"a worker process failed: {stats}")
            if kind == "batch":
                self.latencies.extend((time.monotonic(), ms) for ms in stats.batch_latencies_ms)
                self.sizes.append(len(stats.batch_latencies_ms))
                self._state[index] = (stats.caught_up, stats.backlog)

    def drained(self) -> bool:
        return all(caught_up and backlog == 0 for caught_up, backlog in self._state.values())

    def stop(self) -> None:
        self.collect(0.1)
        self._pool.stop()


def _stream(settings, home: Path, rate: float, seed: int, workers: int = 1) -> None:
    with open_store(settings) as store:  # drain what earlier phases left in the feed: only the stream is timed
        Worker(store, lambda s: load_scoring_models(s, settings), scoring_versions, batch_size=256).run_once()
    followers = _Followers(settings, home, workers)
    # the stream starts once every worker follows the feed (models loaded, start-up scan done, a first batch written),
    # as a deployed worker does long before a business's traffic arrives
    followers.start()
    start = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    written = ctx.Array("q", 2)
    writer = ctx.Process(target=_write_stream, args=(str(home), rate, STREAM_SECONDS, seed, written))
    writer.start()
    while writer.is_alive() and time.monotonic() - start < STREAM_SECONDS + 60:
        followers.collect(0.1)
    if writer.is_alive():
        writer.terminate()
    written_at = time.monotonic() - start
    deadline = time.monotonic() + DRAIN_BUDGET_S
    followers.collect(0.1)
    while time.monotonic() < deadline and not followers.drained():
        followers.collect(0.1)
    drained = time.monotonic() - start - written_at
    left = "" if followers.drained() else f", NOT drained after {DRAIN_BUDGET_S:.0f} s"
    followers.stop()
    latencies = [(at - start, ms) for at, ms in followers.latencies]
    sizes = followers.sizes
    if not latencies:
        print(f"streaming {rate:.0f}/s: nothing scored")
        return
    lat = sorted(ms for _, ms in latencies)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    # the worker keeps up when latency does not grow while the writer writes: compare the first and last thirds
    during = [ms for at, ms in sorted(latencies) if at <= written_at]
    third = max(1, len(during) // 3)
    early, late = statistics.median(during[:third] or [0]), statistics.median(during[-third:] or [0])
    trend = "flat" if late <= 1.25 * early + 250 else "GROWING"
    who = f", {workers} worker process{'es' if workers > 1 else ''}"
    print(f"streaming {rate:>4.0f} new/s (+~3 purchases each{who}) for {STREAM_SECONDS:.0f} s (written: {written[0]:,} "
          f"customers, {written[1]:,} events in {written_at:.1f} s): {len(lat):,} scored in "
          f"{len(sizes)} batches (mean {statistics.mean(sizes):.0f}, max {max(sizes)}), latency p50 "
          f"{statistics.median(lat):,.0f} ms, p99 {p99:,.0f} ms; median latency first/last third of the stream "
          f"{early:,.0f}/{late:,.0f} ms (backlog {trend}), caught up {max(0.0, drained):.1f} s after the writer "
          f"stopped{left}", flush=True)


def _score_partition(location: str, workers: int, index: int, ready, spans) -> None:
    """A worker process: load the models, wait for the others, re-score this partition once; record the span."""
    home = Path(location)
    settings = _settings(home)
    with open_store(settings) as store:
        models = load_scoring_models(store, settings)
        worker = Worker(store, lambda s: models, scoring_versions, batch_size=256, max_age=0, workers=workers,
                        worker_index=index)
        ready.wait(WORKERS_BUDGET_S)
        t0 = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        stats = worker.run_once()
        spans[3 * index:3 * index + 3] = [t0, time.monotonic(), float(stats.scored)]


def _workers(settings, home: Path) -> None:
    """What a second worker process adds on one embedded file: all customers re-scored by 1, then 2 processes."""
    ctx = multiprocessing.get_context("spawn")
    rates = {}
    for workers in (1, 2):
        with open_store(settings) as store:
            store["customers"].update_many({}, {"$unset": {"score": ""}})
        ready, spans = ctx.Barrier(workers), ctx.Array("d", 3 * workers)
        procs = [ctx.Process(target=_score_partition, args=(str(home), workers, i, ready, spans))
                 for i in range(workers)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(WORKERS_BUDGET_S)
            if proc.is_alive():
                proc.terminate()
        got = [tuple(spans[3 * i:3 * i + 3]) for i in range(workers)]
        scored = sum(int(n) for _, _, n in got)
        wall = max(end for _, end, _ in got) - min(start for start, _, _ in got)
        rates[workers] = scored / wall if wall > 0 else 0.0
        print(f"{workers} worker process{'es' if workers > 1 else ''} on one embedded file: {scored:,} customers in "
              f"{wall:.1f} s, {rates[workers]:,.0f} customers/s"
              + (f" ({', '.join(f'{int(n):,} in {e - b:.1f} s' for b, e, n in got)})" if workers > 1 else ""),
              flush=True)
    print(f"a second worker process adds {100 * (rates[2] / rates[1] - 1):+.0f}% "
          f"({rates[2] / rates[1]:.2f}x one worker)", flush=True)


def _store_paths(tmp: Path) -> None:
    """The store rows of the issue: bench/store.py's paired embedded-vs-mongomock measurement, run in this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from store import store_paths  # bench/store.py (bench/ is a folder of scripts, not a package)

    (tmp / "paths").mkdir()
    store_paths(tmp / "paths", STORE_DOCS, STORE_BUDGET_S)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=5_000, help="customers to simulate")
    parser.add_argument("m", nargs="?", type=int, default=2_000, help="customers to score")
    parser.add_argument("--home", type=Path, help="a home with a trained store to copy instead of training")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: throughput,stream,workers,store")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        if args.home:
            shutil.copytree(args.home, home)
        else:
            home.mkdir()
            _prepare(home, args.n)
        settings = _settings(home)
        if "throughput" not in skip:
            with open_store(settings) as store:
                _throughput(store, settings, args.m)
        if "stream" not in skip:
            for i, rate in enumerate(STREAM_RATES):
                _stream(settings, home, rate, SEED + i)
            for i, rate in enumerate(TWO_WORKER_RATES):
                _stream(settings, home, rate, SEED + 10 + i, workers=2)
        if "workers" not in skip:
            _workers(settings, home)
        if "store" not in skip:  # last: its 50,000 mongomock documents slowed every later phase of this process
            _store_paths(tmp)


if __name__ == "__main__":
    main()
