"""Micro-batching for the API: requests that arrive while one batch is scored are scored together as the next one.

Scoring has a fixed cost per call (a model call per task, the SHAP set-up) that one customer barely adds to, and
the SHAP explainers keep scratch state, so calls cannot overlap anyway. A :class:`MicroBatcher` owns one scoring
thread; request threads hand it a :class:`Job` and wait for its future. The thread takes every job waiting when it
becomes free (nothing waits on a timer, so a lone request is not delayed), groups those that can share a call
(same as-of date, same number of reasons, no customer id in two of them, at most ``max_customers``) and runs each
group with one call of ``run``. If a group's call fails, its jobs are retried one by one, so one bad request
cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's validated customers and events; ``key`` says which jobs may share a call."""

    customers: list[dict]
    events: list[dict]
    key: Any
    key_digest: str | None = None  # the API key to confirm before this job is scored (see ``admit``)
    ids: frozenset = field(init=False)
    future: Future = field(default_factory=Future)

    def __post_init__(self):
        self.ids = frozenset(str(c.get("_id", c.get("customer_id"))) for c in self.customers)


def _alone(job: Job) -> bool:
    return isinstance(job.key, tuple) and len(job.key) == 2 and job.key[0] == "call"


class MicroBatcher:
    """One scoring thread that scores waiting jobs in groups.

    Parameters
    ----------
    run : callable
        ``run(key, jobs) -> list`` with one result per job, in order; runs on the scoring thread only.
    max_customers : int
        Most customers in one call (a larger single job still runs alone).
    admit : callable, optional
        ``admit(jobs) -> list`` of None or an exception per job, called on the scoring thread with every job
        taken before any is scored; a job given an exception fails with it and is not scored (the API confirms
        the batch's keys here, in one read). If ``admit`` itself raises, every job fails with that error.
    """

    def __init__(self, run: Callable[[Any, list[Job]], list], max_customers: int = 256,
                 admit: Callable[[list[Job]], list] | None = None):
        self.run = run
        self.max_customers = max_customers
        self.admit = admit
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.batches = 0  # calls of ``run`` so far (for tests and the bench)

    def submit(self, job: Job) -> Any:
        """Queue ``job`` and wait for its result (its exception is raised here)."""
        return self._put(job).result()

    async def submit_async(self, job: Job) -> Any:
        """:meth:`submit` for an event loop: the loop waits on the job's future without holding a thread."""
        return await asyncio.wrap_future(self._put(job))

    def _put(self, job: Job) -> Future:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="custscore-scoring", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job.future

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the scoring thread, alone, and return its result."""
        job = Job([], [], key=("call", fn))
        return self.submit(job)

    def _loop(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while True:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for group in self.groups(self._admitted(jobs)):
                self._run(group)

    def _admitted(self, jobs: list[Job]) -> list[Job]:
        """The jobs ``admit`` lets through; the others' futures get their exception."""
        if self.admit is None:
            return jobs
        try:
            verdicts = self.admit(jobs)
        except Exception as exc:  # noqa: BLE001 - e.g. the store is down: every waiting request hears why
            verdicts = [exc] * len(jobs)
        kept = []
        for job, refused in zip(jobs, verdicts, strict=True):
            if refused is None:
                kept.append(job)
            else:
                job.future.set_exception(refused)
        return kept

    def groups(self, jobs: list[Job]) -> list[list[Job]]:
        """Jobs that may share one call, in arrival order of each group's first job."""
        out: list[dict] = []
        for job in jobs:
            home = None
            if not _alone(job):
                home = next((g for g in out if g["key"] == job.key and not g["ids"] & job.ids
                             and g["size"] + len(job.customers) <= self.max_customers), None)
            if home is None:
                out.append({"key": job.key, "ids": set(job.ids), "size": len(job.customers), "jobs": [job]})
            else:
                home["ids"] |= job.ids
                home["size"] += len(job.customers)
                home["jobs"].append(job)
        return [g["jobs"] for g in out]

    def _run(self, group: list[Job]) -> None:
        key = group[0].key
        try:
            if _alone(group[0]):
                results = [key[1]()]
            else:
                self.batches += 1
                results = self.run(key, group)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(group) > 1:
                log.info("a batch of %d requests failed (%s); scoring them one by one", len(group), exc)
                for job in group:
                    self._run([job])
                return
            group[0].future.set_exception(exc)
            return
        for job, result in zip(group, results, strict=True):
            job.future.set_result(result)
