"""The scorer worker: change feeds -> micro-batches -> models -> one write per batch -> saved tokens.

Exactly-once effect: a batch is read from the feeds with in-memory tokens,
scored, written as one unit (writeback.py), and only then are the tokens saved
in ``scorer_state``. A crash replays at most the batch in flight, and a replay
changes nothing because results equal to the stored score are dropped and
prediction records are upserted under deterministic ids.

Every start takes the feed positions (if none are saved), scans the customers
without a current score and then follows the feeds; ``run`` follows until
asked to stop, ``run_once`` drains the backlog and returns. Between feed
batches the freshness sweep (freshness.py) re-scores customers whose score is
older than ``max_age`` against the as-of clock. The feed, the scan and the
sweep share one pending set (pending.py): a customer is scored once per input
version and as-of day.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from custscore.clock import Clock, WallClock, now, parse_age
from custscore.errors import CustscoreError
from custscore.scorer.batch import BatchOutcome, score_customers
from custscore.scorer.feed import FEEDS, FeedFollower, FeedRead, Item, positions, rescan_items, stale_items
from custscore.scorer.freshness import DEFAULT_INTERVAL_S, DEFAULT_MAX_AGE, FreshnessSweep
from custscore.scorer.heap import settle_long_lived
from custscore.scorer.partition import Partition
from custscore.scorer.pending import PendingSet
from custscore.scorer.state import load_state, save_state, worker_alive
from custscore.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["Worker", "WorkerStats", "worker_alive"]

THROUGHPUT_WINDOW_S = 10.0
# run_once: a start-up backlog of more batches than this freezes the loaded models out of full collections first
# (one full pass, ~150 ms, against one such pass every ~2,000 customers scored otherwise: scorer/heap.py)
SETTLE_BACKLOG_BATCHES = 8
MIN_POLL_S = 0.005  # the first idle pause after a poll that found changes

ModelsLoader = Callable[[Store], Any]  # store -> ProductionModels
VersionsProbe = Callable[[Store], dict]  # store -> {task: version}
OnBatch = Callable[["WorkerStats"], None]


def percentile(values: Collection[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (nearest rank), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass
class WorkerStats:
    """A live picture of the worker, passed to ``on_batch`` and returned by ``run``/``run_once``."""

    worker: str
    versions: dict = field(default_factory=dict)
    scored: int = 0  # scores written
    replayed: int = 0  # results equal to the stored score, not written again
    dead_letters: int = 0  # documents that could not be scored
    batches: int = 0
    echoes: int = 0  # changes caused by our own writes, skipped
    throughput: float = 0.0  # customers scored per second over the last 10 s
    latency_p50_ms: float | None = None  # arrival -> write, over the last live (feed) customers
    latency_p99_ms: float | None = None
    batch_latencies_ms: list[float] = field(default_factory=list)  # arrival -> write of the last batch's feed customers
    backlog: int = 0  # customers waiting: pending feed changes plus the scan and sweep queue
    stale: int = 0  # scores older than max_age at the start of the sweep pass, less those re-scored since
    stale_at_least: bool = False  # ``stale`` is a lower bound (the count stops at freshness.STALE_COUNT_CAP)
    swept: int = 0  # scores the freshness sweep re-wrote
    clock: str = "wall clock"  # what the as-of clock is ("wall clock", "as of 2025-06-30")
    max_age: dt.timedelta | None = None  # None: the sweep is off
    caught_up: bool = False  # the last poll read everything the feeds had
    switches: list[str] = field(default_factory=list)  # "switched churn A -> B", oldest first
    started_at: dt.datetime | None = None
    last_batch_at: dt.datetime | None = None
    seconds: float = 0.0


class Worker:
    """Scores new and changed customers from the change feeds, in micro-batches.

    Parameters
    ----------
    store : Store
        The store to follow and write to.
    models_loader : callable
        ``models_loader(store) -> ProductionModels``; called at start and on hot reload.
    versions_probe : callable, optional
        ``versions_probe(store) -> {task: version}`` of the promoted models, checked
        before each batch; a difference reloads the models. None disables hot reload.
    batch_size : int
        Most customers per batch.
    max_wait_ms : int
        Longest wait from the first pending change to its batch; a batch is flushed sooner, as soon as
        the feeds hold nothing more (adaptive micro-batch).
    workers, worker_index : int
        This worker's share of the customers (stable hash of the id).
    poll_interval_s : float
        Longest pause between polls when the feeds are idle (the pause starts at 5 ms after a change
        and doubles up to this).
    heartbeat_s : float
        How often an idle worker refreshes its heartbeat in ``scorer_state``.
    latency_window : int
        Latency percentiles are over this many last customers.
    rescore_on_reload : bool
        After a model switch, also rescore customers scored by the old models.
    clock : Clock, optional
        The as-of clock features and score ages are measured against (default: the wall clock).
    max_age : timedelta, float (days) or str, optional
        Re-score customers whose score is older (``1d``, ``12h``); 0 or None turns the sweep off.
    sweep_interval_s : float
        Pause between freshness sweep passes (each pass pages through the stale scores).
    """

    def __init__(
        self,
        store: Store,
        models_loader: ModelsLoader,
        versions_probe: VersionsProbe | None = None,
        *,
        batch_size: int = 256,
        max_wait_ms: int = 500,
        workers: int = 1,
        worker_index: int = 0,
        poll_interval_s: float = 0.1,
        heartbeat_s: float = 2.0,
        latency_window: int = 1000,
        rescore_on_reload: bool = True,
        clock: Clock | None = None,
        max_age: dt.timedelta | float | str | None = DEFAULT_MAX_AGE,
        sweep_interval_s: float = DEFAULT_INTERVAL_S,
    ):
        if batch_size < 1:
            raise CustscoreError(f"batch size must be at least 1, got {batch_size}; pass e.g. --batch-size 256")
        if max_wait_ms < 0:
            raise CustscoreError(f"max wait must be >= 0 ms, got {max_wait_ms}; pass e.g. --max-wait-ms 500")
        self.store = store
        self.models_loader = models_loader
        self.versions_probe = versions_probe
        self.batch_size = int(batch_size)
        self.max_wait_s = max_wait_ms / 1000.0
        self.partition = Partition(workers, worker_index)
        self.poll_interval_s = poll_interval_s
        self.heartbeat_s = heartbeat_s
        self.rescore_on_reload = rescore_on_reload
        self.clock = clock or WallClock()
        self.sweep = FreshnessSweep(store, self.clock, self.partition, parse_age(max_age), self.batch_size,
                                    sweep_interval_s)
        self.models: Any = None
        self.stats = WorkerStats(worker=self.partition.state_id, clock=self.clock.describe(),
                                 max_age=self.sweep.max_age if self.sweep.enabled else None)
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._recent: deque[tuple[float, int]] = deque()
        self._queue = PendingSet()
        self._pending_since = 0.0
        self._idle_pause = poll_interval_s
        self._follower: FeedFollower | None = None
        self._failed_probe: dict | None = None
        self._started = 0.0
        self._following = False  # run(), not run_once(): a long-lived process whose pauses are latency

    # -- public -------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, on_batch: OnBatch | None = None) -> WorkerStats:
        """Follow the feeds until ``stop`` is set, then finish the pending batch, save the tokens and return."""
        stop = stop or threading.Event()
        self._following = True
        self._start()
        settle_long_lived()  # the models stay loaded for the whole run: keep them out of full GC passes
        last_beat = time.monotonic()
        try:
            while not stop.is_set():
                read = self._poll()
                if self._flush_due(read):
                    self._flush(on_batch)
                    last_beat = time.monotonic()
                    continue
                if read.caught_up and self._sweep_page():
                    continue
                if time.monotonic() - last_beat >= self.heartbeat_s:
                    self._maybe_reload()
                    self._save()
                    last_beat = time.monotonic()
                if read.caught_up:
                    stop.wait(self._pause())
            if self._queue.feed_count:
                self._flush(on_batch, top_up=False)
        finally:
            self._stop()
        return self.stats

    def run_once(self, on_batch: OnBatch | None = None) -> WorkerStats:
        """Score the backlog (unscored and stale customers, every change in the feeds), then return."""
        self._start()
        if len(self._queue) > SETTLE_BACKLOG_BATCHES * self.batch_size:
            settle_long_lived()  # a long one-shot: the models stay loaded for all of it
        try:
            while True:
                read = self._poll()
                if len(self._queue):
                    self._flush(on_batch)
                elif not read.caught_up:
                    continue
                elif not self._sweep_page() and not self.sweep.due():
                    break
        finally:
            self._stop()
        return self.stats

    # -- lifecycle ----------------------------------------------------------------
    def _start(self) -> None:
        self._started = time.monotonic()
        self.stats.started_at = now()
        self.models = self.models_loader(self.store)
        self.stats.versions = dict(self.models.versions)
        state = load_state(self.store, self.partition.state_id)
        tokens = state.get("tokens") or {}
        if any(tokens.get(name) is None for name in FEEDS):
            # first start: positions before the scan, saved at once so a crash mid-scan resumes from them
            tokens = positions(self.store)
            save_state(self.store, self.partition.state_id, tokens=tokens, watermark=now(), running=True,
                       workers=self.partition.workers, worker_index=self.partition.index, versions=self.stats.versions)
        self._follower = FeedFollower(self.store, self.partition, tokens)
        self._follower.read_at = state.get("watermark")
        self._enqueue_scan(stale_items(self.store, self.models.versions, self.partition))
        log.info("worker %s started with models %s, %s, max age %s; %d customers to (re)score first",
                 self.partition.state_id, self.stats.versions, self.clock.describe(),
                 self.stats.max_age or "off (no freshness sweep)", self._queue.queued_count)
        self._save()

    def _stop(self) -> None:
        self.stats.seconds = time.monotonic() - self._started
        self._save(running=False)
        log.info("worker %s stopped: %d scored, %d dead letters, %d batches",
                 self.partition.state_id, self.stats.scored, self.stats.dead_letters, self.stats.batches)

    def _save(self, running: bool = True) -> None:
        """Heartbeat; the tokens go with it only when no read change is still waiting to be written."""
        fields: dict[str, Any] = {
            "running": running,
            "versions": self.stats.versions,
            "workers": self.partition.workers,
            "worker_index": self.partition.index,
            "counts": {"scored": self.stats.scored, "dead_letters": self.stats.dead_letters,
                       "batches": self.stats.batches, "replayed": self.stats.replayed},
        }
        if not self._queue.feed_count and self._follower is not None:
            fields["tokens"] = self._follower.tokens
            if self._follower.read_at is not None:
                fields["watermark"] = self._follower.read_at
        save_state(self.store, self.partition.state_id, **fields)

    # -- feeds and batches --------------------------------------------------------
    def _poll(self) -> FeedRead:
        room = self.batch_size - self._queue.feed_count
        if room <= 0:
            return FeedRead(caught_up=False)
        assert self._follower is not None
        watermark = self._follower.read_at
        read = self._follower.poll(room, self.models.versions)
        self.stats.echoes = self._follower.echoes
        if read.lost:
            self._enqueue_scan(rescan_items(self.store, watermark, self.models.versions, self.partition))
        if read.items and not self._queue.feed_count:
            self._pending_since = time.monotonic()
        if read.items:
            self._idle_pause = min(MIN_POLL_S, self.poll_interval_s)  # the feed is busy: poll again soon
        for item in read.items:
            self._queue.add_feed(item)  # replaces a scan or sweep entry of the same customer
        self.stats.caught_up = read.caught_up
        self.stats.backlog = len(self._queue)
        return read

    def _flush_due(self, read: FeedRead) -> bool:
        """Adaptive micro-batch: flush as soon as the feeds are drained (a quiet feed gives batches of one or
        two, scored at once; under load the changes that arrived while the last batch was scored make the
        next, larger batch), when the batch is full, or after ``max_wait`` at the latest."""
        if self._queue.queued_count or self._queue.feed_count >= self.batch_size:
            return True
        if not self._queue.feed_count:
            return False
        return read.caught_up or time.monotonic() - self._pending_since >= self.max_wait_s

    def _pause(self) -> float:
        """Idle pause between polls: short right after changes, doubling up to ``poll_interval_s`` when quiet."""
        pause = self._idle_pause
        self._idle_pause = min(self.poll_interval_s, max(pause * 2, MIN_POLL_S))
        if not self._queue.feed_count:
            return pause
        return max(0.0, min(pause, self._pending_since + self.max_wait_s - time.monotonic()))

    def _enqueue_scan(self, items: list[Item]) -> None:
        self._queue.add_queued(items)

    def _sweep_page(self) -> bool:
        """Queue the next page of stale scores (between feed batches); True when it queued any."""
        if self._queue.queued_count or not self.sweep.due():
            return False
        added = self._queue.add_queued(self.sweep.next_page(self._queue.ids()))
        self.stats.stale, self.stats.stale_at_least = self.sweep.stale, self.sweep.stale_capped
        self.stats.backlog = len(self._queue)
        return added > 0

    def _flush(self, on_batch: OnBatch | None, top_up: bool = True) -> None:
        self._maybe_reload()
        items = self._queue.take(self.batch_size, top_up)
        seen = now()
        arrivals = {cid: item.arrival or seen for cid, item in items.items()}
        outcome = score_customers(self.store, self.models, list(items), arrivals, worker=self.partition.state_id,
                                  as_of=self.clock.now())
        # the write is acknowledged: only now may the tokens move past these changes
        self._queue.done(items)
        self.sweep.after_batch([cid for cid, item in items.items() if item.source == "sweep"], set(outcome.scored))
        self._record(outcome, items)
        self._save()
        if on_batch is not None:
            on_batch(self.stats)

    def _record(self, outcome: BatchOutcome, items: dict[Any, Item]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.scored += len(outcome.scored)
        stats.replayed += len(outcome.replayed)
        stats.dead_letters += len(outcome.failed)
        stats.last_batch_at = outcome.scored_at
        stats.batch_latencies_ms = [score["latency_ms"] for cid, score in outcome.scores.items()
                                    if items[cid].source in FEEDS and score.get("latency_ms") is not None]
        self._latencies.extend(stats.batch_latencies_ms)
        t = time.monotonic()
        self._recent.append((t, len(outcome.scored)))
        while self._recent and self._recent[0][0] < t - THROUGHPUT_WINDOW_S:
            self._recent.popleft()
        span = min(THROUGHPUT_WINDOW_S, max(t - self._started, 1e-3))
        stats.throughput = sum(n for _, n in self._recent) / span
        latencies = list(self._latencies)
        stats.latency_p50_ms = percentile(latencies, 0.50)
        stats.latency_p99_ms = percentile(latencies, 0.99)
        stats.backlog = len(self._queue)
        stats.stale, stats.stale_at_least = self.sweep.stale, self.sweep.stale_capped
        stats.swept = self.sweep.rescored

    # -- hot reload ---------------------------------------------------------------
    def _maybe_reload(self) -> None:
        """Switch to newly promoted models if the probe reports other versions than the loaded ones."""
        if self.versions_probe is None:
            return
        probed = dict(self.versions_probe(self.store) or {})
        if not probed or probed == self.models.versions or probed == self._failed_probe:
            return
        try:
            fresh = self.models_loader(self.store)
        except CustscoreError as exc:
            log.warning("promoted models %s could not be loaded (%s); still scoring with %s",
                        probed, exc, self.models.versions)
            self._failed_probe = probed
            return
        old, new = dict(self.models.versions), dict(fresh.versions)
        for task in sorted(set(old) | set(new)):
            if old.get(task) != new.get(task):
                message = f"switched {task} {old.get(task)} -> {new.get(task)}"
                log.info("%s", message)
                self.stats.switches.append(message)
        self.models = fresh
        self.stats.versions = new
        self._failed_probe = None
        if self._following:
            settle_long_lived()  # the old models' cycles are collected, the new ones frozen
        if self.rescore_on_reload:
            self._enqueue_scan(stale_items(self.store, new, self.partition))
