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
  recommendations, one write per batch, prediction records, tokens;
* naive: what tutorials do - per customer, load the models, score one row, update one document;
* streaming: a writer *process* inserts new customers at 10, 50, 100 and 200 per second, each with about three
  purchases by existing customers, while a worker thread follows the feed; latency is each change's arrival
  (``updated_at`` / ``ingested_at``) to its written score, over every customer the feed asked for;
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
import threading
import time
from pathlib import Path

from custscore.config import Settings
from custscore.models import feature_reads
from custscore.models import features as F
from custscore.models.predict import HOT_PATH_NO_SHAP
from custscore.scorer.batch_events import BatchEvents
from custscore.scorer.recommending import WithRecommendations, load_scoring_models, scoring_versions
from custscore.scorer.worker import Worker
from custscore.store import open_store

SEED = 7
NAIVE_ROWS = 20
THROUGHPUT_ROUNDS = 3
NAIVE_BUDGET_S = 120.0
STREAM_RATES = (10.0, 50.0, 100.0, 200.0)  # new customers per second, each with ~3 purchases by existing ones
STREAM_SECONDS = 15.0
DRAIN_BUDGET_S = 60.0
TICK_S = 0.1
STORE_DOCS = 50_000
STORE_BUDGET_S = 20.0


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
        columns = {f: [e.get(f) for e in evs] for f in ("customer_id", *sorted(fields - {"customer_id"}))}
        batches.append((part, BatchEvents(columns).for_customers([str(d["_id"]) for d in part])))

    def in_memory(recommend: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        done = 0
        for part, events in batches:
            done += _in_memory(models, part, events, now, recommend)
        return (time.perf_counter() - t0) / max(1, -(-len(docs) // 256)), done / (time.perf_counter() - t0)

    def end_to_end() -> tuple[float, int]:
        store["customers"].update_many({"_id": {"$in": ids}}, {"$unset": {"score": ""}})
        t0 = time.perf_counter()
        stats = Worker(store, lambda s: models, scoring_versions, batch_size=256, max_age=0).run_once()
        assert stats.scored >= len(ids), (stats.scored, len(ids))
        return stats.scored / (time.perf_counter() - t0), stats.batches

    # the machine is shared and its load swings: each round times the ceiling (with and without the recommender)
    # right before the worker, and the ratios are taken within a round
    rounds = []
    for _ in range(THROUGHPUT_ROUNDS):
        (batch_s, ceiling), (plain_batch_s, _) = in_memory(True), in_memory(False)
        e2e, n_batches = end_to_end()
        rounds.append((e2e / ceiling, e2e, ceiling, batch_s, plain_batch_s, n_batches))
    rounds.sort()
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
    print(f"end-to-end worker ({n_batches} batches: feed, reads, compute, one write per batch): {e2e:,.0f} customers/s "
          f"(rounds: {', '.join(f'{r[1]:,.0f}' for r in rounds)})")
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


def _stream(settings, home: Path, rate: float, seed: int) -> None:
    latencies: list[tuple[float, float]] = []  # (seconds since the writer started, latency ms)
    sizes: list[int] = []
    stop = threading.Event()
    holder: dict = {}
    start = time.monotonic()

    def on_batch(stats) -> None:
        at = time.monotonic() - start
        latencies.extend((at, ms) for ms in stats.batch_latencies_ms)
        sizes.append(len(stats.batch_latencies_ms))

    def follow() -> None:
        with open_store(settings) as wstore:
            worker = Worker(wstore, lambda s: load_scoring_models(s, settings), scoring_versions, batch_size=256,
                            max_wait_ms=500)
            holder["worker"] = worker
            worker.run(stop, on_batch)

    with open_store(settings) as store:  # drain what earlier phases left in the feed: only the stream is timed
        Worker(store, lambda s: load_scoring_models(s, settings), scoring_versions, batch_size=256).run_once()
    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    # the stream starts once the worker follows the feed (models loaded, start-up scan done, first poll caught up),
    # as a deployed worker does long before a business's traffic arrives
    while "worker" not in holder or not holder["worker"].stats.caught_up:
        stop.wait(0.1)
    start = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    written = ctx.Array("q", 2)
    writer = ctx.Process(target=_write_stream, args=(str(home), rate, STREAM_SECONDS, seed, written))
    writer.start()
    writer.join(STREAM_SECONDS + 60)
    if writer.is_alive():
        writer.terminate()
    written_at = time.monotonic() - start
    deadline = time.monotonic() + DRAIN_BUDGET_S
    stats = holder["worker"].stats
    while time.monotonic() < deadline and not (stats.caught_up and stats.backlog == 0):
        stop.wait(0.1)
    drained = time.monotonic() - start - written_at
    left = "" if stats.caught_up and stats.backlog == 0 else f", NOT drained after {DRAIN_BUDGET_S:.0f} s"
    stop.set()
    thread.join(30)
    if not latencies:
        print(f"streaming {rate:.0f}/s: nothing scored")
        return
    lat = sorted(ms for _, ms in latencies)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    # the worker keeps up when latency does not grow while the writer writes: compare the first and last thirds
    during = [ms for at, ms in latencies if at <= written_at]
    third = max(1, len(during) // 3)
    early, late = statistics.median(during[:third] or [0]), statistics.median(during[-third:] or [0])
    trend = "flat" if late <= 1.25 * early + 250 else "GROWING"
    print(f"streaming {rate:>4.0f} new/s (+~3 purchases each) for {STREAM_SECONDS:.0f} s (written: {written[0]:,} "
          f"customers, {written[1]:,} events in {written_at:.1f} s): {len(lat):,} scored in "
          f"{len(sizes)} batches (mean {statistics.mean(sizes):.0f}, max {max(sizes)}), latency p50 "
          f"{statistics.median(lat):,.0f} ms, p99 {p99:,.0f} ms; median latency first/last third of the stream "
          f"{early:,.0f}/{late:,.0f} ms (backlog {trend}), caught up {max(0.0, drained):.1f} s after the writer "
          f"stopped{left}", flush=True)


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
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: throughput,stream,store")
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
        if "store" not in skip:  # last: its 50,000 mongomock documents slowed every later phase of this process
            _store_paths(tmp)


if __name__ == "__main__":
    main()
