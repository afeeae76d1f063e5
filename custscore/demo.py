"""The end-to-end demo: simulate, analyse, mirror, train, score a live stream, query, monitor, report.

The core runs the steps and hands each result to a ``DemoUI`` (the CLI draws
them with rich); it prints nothing itself. The worker runs in a thread with
its own store connection, like a separate process would, while the stream
writes new customers and purchases through another.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from custscore.config import Settings
from custscore.store import open_store
from custscore.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """Sizes and durations of the demo."""

    customers: int = 20_000
    seed: int = 7
    stream_seconds: float = 30.0
    stream_rate: float = 5.0  # new customers per second (plus 3 purchases per new customer)
    cv: int = 5


class DemoUI(Protocol):
    """What the demo reports, step by step."""

    def section(self, title: str) -> None: ...
    def frame(self, frame: Any, title: str) -> None: ...
    def training(self, results: list) -> None: ...
    def worker(self, stats: Any) -> None: ...
    def scored(self, docs: list[dict], title: str) -> None: ...
    def monitor(self, result: Any) -> None: ...
    def message(self, text: str) -> None: ...
    def progress(self, what: str, done: int, total: int) -> None:
        """A long step's progress: ``what`` is ``"TASK"`` or ``"TASK: detail"`` (one bar per task)."""
    def try_next(self, customer_id: str | None) -> None:
        """The commands to try after the demo, with a real customer id of the store."""


def _stream_and_score(settings: Settings, options: DemoOptions, ui: DemoUI) -> tuple[Any, Any, list]:
    from custscore.scorer.recommending import production_worker
    from custscore.simulator.run import run_stream

    stop = threading.Event()
    started = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        with open_store(settings) as wstore:
            worker = production_worker(wstore, settings, batch_size=256, max_wait_ms=250)

            def on_batch(stats):
                box["stats"] = stats
                started.set()

            try:
                box["stats"] = worker.run(stop, on_batch)
            except BaseException as exc:  # surfaced in the main thread below
                box["error"] = exc
            finally:
                started.set()

    thread = threading.Thread(target=work, name="custscore-scorer", daemon=True)
    thread.start()
    started.wait()  # models loaded and a first batch written: the worker is live
    if "error" in box:
        raise box["error"]
    with open_store(settings) as sstore:
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
        written = run_stream(sstore, options.stream_rate, options.stream_seconds, seed=options.seed,
                             on_tick=lambda _step: box.get("stats") and ui.worker(box["stats"]))
        new_ids = [d["_id"] for d in sstore["customers"].find({"signup_date": {"$gte": before}}, {"_id": 1})]
        deadline = time.monotonic() + 60
        # the stream's customers come through the feed ahead of the start-up backlog; wait for their scores
        while time.monotonic() < deadline and "error" not in box and sstore["customers"].count(
                {"_id": {"$in": new_ids}, "score": {"$exists": True}}) < len(new_ids):
            stop.wait(0.25)
    stop.set()
    thread.join()
    if "error" in box:
        raise box["error"]
    return written, box.get("stats"), new_ids


def run_demo(store: Store, settings: Settings, options: DemoOptions, ui: DemoUI) -> None:
    """Run every step of the demo on ``store`` (reset first), reporting through ``ui``."""
    from custscore.analytics.pipelines import run_pipeline
    from custscore.analytics.report import build_report
    from custscore.scorer.health import scorer_health
    from custscore.scorer.monitor import monitor, production_references
    from custscore.simulator.generate import SimulationConfig
    from custscore.simulator.run import run_simulation
    from custscore.store.mirror import mirror
    from custscore.store.query import query_customers

    started = time.perf_counter()
    ui.section(f"1. simulate {options.customers:,} customers with a year of purchases (seed {options.seed})")
    simulated = [0]

    def simulating(n: int) -> None:
        simulated[0] += n
        ui.progress("simulate customers", simulated[0], options.customers)

    summary = run_simulation(store, SimulationConfig(n_customers=options.customers, seed=options.seed), replace=True,
                             on_progress=simulating)
    ui.message(f"{summary.customers:,} customers, {summary.events:,} events in {summary.seconds:.0f} s")

    ui.section("2. group statistics (aggregation pipelines inside the store)")
    for name, by in (("churn_by_group", "region"), ("satisfaction_by_group", "channel"), ("top_categories", None)):
        ui.frame(run_pipeline(store, name, by=by), f"custscore stats {name}" + (f" --by {by}" if by else ""))
    mirrored = mirror(store, settings.home / "mirror.sqlite", on_progress=_mirror_progress(store, ui))
    tables = ", ".join(f"{name} {copy.rows:,} rows" for name, copy in mirrored.tables.items())
    ui.message(f"mirrored to SQLite for SQL users in {mirrored.seconds:.0f} s ({tables}): "
               f"custscore sql \"SELECT ...\" reads {settings.home / 'mirror.sqlite'}")

    ui.section("3. train every task")
    ui.training(train_every_task(store, settings, options, ui))

    ui.section(f"4. score live: the worker follows the change feed while new customers arrive for "
               f"{options.stream_seconds:.0f} s")
    written, stats, new_ids = _stream_and_score(settings, options, ui)
    scored_new = store["customers"].count({"_id": {"$in": new_ids}, "score": {"$exists": True}})
    ui.message(f"stream wrote {written.customers:,} new customers and {written.events:,} purchases; "
               f"{scored_new:,} of the new customers are scored")
    if stats is not None:
        ui.worker(stats)
        ui.message(f"the worker also worked through {stats.scored:,} customers of the start-up backlog and "
                   f"purchase updates; `custscore score --once` finishes the remaining {stats.backlog:,}")

    ui.section("5. the new customers least likely to buy, with their reasons (a query on the store)")
    risky = list(store["customers"].find({"_id": {"$in": new_ids}, "score": {"$exists": True}},
                                         sort=[("score.churn_probability", -1)], limit=5))
    ui.scored(risky, "highest churn_probability among customers who arrived during the stream (band 'new' while "
                     "they have no purchase: churn_probability = 1 - first_purchase_probability)")
    ui.frame(query_customers(store, {"score.risk": "high"}, sort="score.churn_probability:-1", limit=5),
             "custscore query '{\"score.risk\": \"high\"}' --sort score.churn_probability:-1 --limit 5")

    ui.section("6. drift monitor: recent scores against the training data")
    ui.monitor(monitor(store, production_references(store)))

    ui.section("7. HTML report")
    out_dir = settings.home / "reports" / "demo"
    report = build_report(store, out_dir, settings, progress=ui.progress, scorer_health=scorer_health(store))
    ui.message(f"report: {report.path}")
    ui.message(f"demo finished in {time.perf_counter() - started:.0f} s")
    example = store["customers"].find_one({"score.risk": "high"}, {"_id": 1}) or store["customers"].find_one(
        {"score": {"$exists": True}}, {"_id": 1})
    ui.try_next(str(example["_id"]) if example else None)


def train_every_task(store: Store, settings: Settings, options: DemoOptions, ui: DemoUI) -> list:
    """Step 3 of the demo: satisfaction, churn and segments, recommendations, then demand forecasts per category.

    Returns the results in that order (the demand result last, with ``kind == "forecast"``).
    """
    from custscore.forecast.families import default_families
    from custscore.forecast.production import DemandOptions, train_demand
    from custscore.models.train import TrainOptions, train
    from custscore.recommend.train import RecommendOptions, train_recommender
    from custscore.simulator.products import oracle_scores

    results = train(store, settings, TrainOptions(cv=options.cv, seed=options.seed), ui.progress)
    results.append(train_recommender(store, settings, RecommendOptions(seed=options.seed), oracle_scores,
                                     progress=ui.progress))
    families = default_families()
    started: list[str] = []

    def backtesting(family: str) -> None:
        started.append(family)
        ui.progress(f"demand: backtest {family}", len(started), len(families))

    results.append(train_demand(store, DemandOptions(families=families), on_family=backtesting, settings=settings))
    return results


def _mirror_progress(store: Store, ui: DemoUI):
    """``on_progress(table, rows)`` of the mirror as one bar per table, against the collection's size."""
    totals = {name: store[name].count({}) for name in ("customers", "events", "predictions")}
    done: dict[str, int] = {}

    def report(table: str, rows: int) -> None:
        done[table] = done.get(table, 0) + rows
        ui.progress(f"mirror {table}", done[table], max(done[table], totals.get(table, done[table])))

    return report
