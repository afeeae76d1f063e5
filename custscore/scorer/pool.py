"""Several worker processes on one machine, one per core, each scoring its own share of the customers.

One worker is bound by one core (the GIL): on two cores a second worker process nearly doubles what one file of
the embedded store can score (1.73-1.94x in ``bench/score.py``). A :class:`WorkerPool` starts ``processes``
children, each with its own store connection and models, running the production worker for partition ``i`` of
``processes`` (exactly what ``score --workers N --worker-index i`` runs, so pools and hand-started workers mix
only if their partitions agree). Each child sends the parent a :class:`~custscore.scorer.worker.WorkerStats`
snapshot after every batch; the parent shows them and stops the children. Children are spawned, never forked:
a forked SQLite connection or pymongo client is not safe to use.

The parent's stop is a multiprocessing event; each child mirrors it onto a thread event, which its worker polls
in every loop (a multiprocessing event is a shared semaphore, dearer to poll and measured to add latency).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from custscore.config import Settings
from custscore.errors import ConfigError, CustscoreError
from custscore.scorer.worker import WorkerStats, percentile

log = logging.getLogger(__name__)

LATENCY_WINDOW = 2000  # combined percentiles are over this many last customers of all processes
JOIN_S = 30.0


def _run_child(settings: Settings, as_of: Any, options: dict, index: int, processes: int, watch: bool,
               reports: Any, stop: Any) -> None:
    """One child: the production worker for partition ``index``; every report is ``(kind, index, payload)``.

    Ctrl-C in a terminal reaches the whole process group: a child ignores SIGINT and stops when the parent
    says, after its batch, with its resume token saved."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from custscore.scorer.recommending import production_worker
    from custscore.store import open_store
    from custscore.store.locking import wait_for_write_lock

    try:
        with open_store(settings) as store:
            if watch:
                wait_for_write_lock(store, lambda waited: reports.put(("lock", index, waited)))
            worker = production_worker(store, settings, workers=processes, worker_index=index,
                                       clock=settings.clock(as_of), **options)

            def on_batch(stats: WorkerStats) -> None:
                reports.put(("batch", index, stats))

            if watch:
                local = threading.Event()
                threading.Thread(target=lambda: (stop.wait(), local.set()), daemon=True).start()
                final = worker.run(local, on_batch)
            else:
                final = worker.run_once(on_batch)
        reports.put(("done", index, final))
    except CustscoreError as exc:
        reports.put(("error", index, str(exc)))
    except Exception as exc:  # noqa: BLE001 - the parent reports it and stops the others
        log.exception("worker process %d failed", index)
        reports.put(("error", index, f"worker process {index} failed: {type(exc).__name__}: {exc}"))


class WorkerPool:
    """``processes`` worker processes sharing the customers by the hash of their id.

    Parameters
    ----------
    settings : Settings
        The store every child opens (an embedded file or MongoDB; not the in-memory store).
    processes : int
        How many children (partitions).
    watch : bool
        Follow the feeds until :meth:`stop` (``score --watch``); False: drain the backlog and exit (``--once``).
    as_of : str or date, optional
        The as-of date (``--as-of``) each child's clock follows.
    **options
        Worker options (``batch_size``, ``max_wait_ms``, ``max_age``...).
    """

    def __init__(self, settings: Settings, processes: int, watch: bool = True, as_of: Any = None, **options: Any):
        if processes < 1:
            raise ConfigError(f"--processes {processes} is not allowed; use 1 or more, e.g. --processes 2")
        if settings.backend == "memory":
            raise ConfigError("--processes needs a store other processes can open; the in-memory store is private "
                              "to one process: use the embedded file (the default) or --mongo-uri")
        self.processes, self.watch = processes, watch
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._reports = ctx.Event(), ctx.Queue()
        self._procs = [ctx.Process(target=_run_child, name=f"custscore-worker-{i}", daemon=True,
                                   args=(settings, as_of, options, i, processes, watch, self._reports, self._stop))
                       for i in range(processes)]
        self.stats: dict[int, WorkerStats] = {}  # each child's last snapshot
        self.finished: set[int] = set()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def start(self) -> WorkerPool:
        for proc in self._procs:
            proc.start()
        return self

    def reports(self, timeout: float) -> Iterator[tuple[str, int, Any]]:
        """The children's reports: wait up to ``timeout`` s for the first, then take whatever else has come.

        ``("batch", i, stats)`` after each batch, ``("lock", i, seconds)`` while waiting for a write lock,
        ``("done", i, stats)`` when a child ends, ``("error", i, message)`` when it fails. A child that died
        without a word (killed) is reported as an error."""
        try:
            item = self._reports.get(timeout=timeout)
            while True:
                yield self._note(item)
                item = self._reports.get_nowait()
        except queue.Empty:
            pass
        for i, proc in enumerate(self._procs):
            if i not in self.finished and not proc.is_alive() and proc.exitcode not in (None, 0):
                self.finished.add(i)
                yield "error", i, f"worker process {i} exited with code {proc.exitcode}"

    def _note(self, item: tuple[str, int, Any]) -> tuple[str, int, Any]:
        kind, index, payload = item
        if kind in ("batch", "done"):
            self.stats[index] = payload
            if kind == "batch":
                self._latencies.extend(payload.batch_latencies_ms)
        if kind in ("done", "error"):
            self.finished.add(index)
        return item

    @property
    def done(self) -> bool:
        """Every child has ended."""
        return len(self.finished) == self.processes

    def combined(self) -> WorkerStats:
        """One picture of the pool: counts and rates summed, latency percentiles over all children's last
        customers, the model versions and clock of any child."""
        parts = list(self.stats.values())
        total = WorkerStats(worker=f"{self.processes} processes")
        for name in ("scored", "replayed", "dead_letters", "batches", "echoes", "throughput", "backlog", "stale",
                     "swept"):
            setattr(total, name, sum(getattr(s, name) for s in parts))
        if parts:
            first = parts[0]
            total.versions, total.clock, total.max_age = dict(first.versions), first.clock, first.max_age
            total.stale_at_least = any(s.stale_at_least for s in parts)
            total.caught_up = len(parts) == self.processes and all(s.caught_up for s in parts)
            total.switches = [line for s in parts for line in s.switches]
            stamps = [s.last_batch_at for s in parts if s.last_batch_at is not None]
            total.last_batch_at = max(stamps) if stamps else None
            total.seconds = max(s.seconds for s in parts)
        if self._latencies:
            total.latency_p50_ms = percentile(self._latencies, 0.50)
            total.latency_p99_ms = percentile(self._latencies, 0.99)
        return total

    def stop(self) -> None:
        """Ask every following child to finish its batch and save its resume token; wait, then end any that hangs.

        A child draining a backlog (``watch=False``) is ended at once: each batch is written in one transaction
        before the feed position moves past it, so the next run picks up where it stopped. Calling it again is
        free."""
        if self._stop.is_set() and not any(proc.is_alive() for proc in self._procs):
            return  # stopped already
        self._stop.set()
        for proc in self._procs:
            if not self.watch and proc.is_alive():
                proc.terminate()
            proc.join(JOIN_S)
            if proc.is_alive():
                log.warning("worker process %s did not stop within %.0f s; terminating it", proc.name, JOIN_S)
                proc.terminate()
                proc.join(JOIN_S)
        for _ in self.reports(0.0):  # the children's final snapshots
            pass

