"""What the HTTP API does, without HTTP: score given documents, read stored scores, explain, list models.

One :class:`ScoringService` per server process holds the store and the loaded
production models. It checks the promoted versions at most once per
``reload_every_s`` (one small read of the ``models`` collection) and swaps in
newly promoted models as the worker does, so ``custscore promote`` reaches a
running server without a restart. Scoring runs the same code as ``predict``
(:func:`custscore.scorer.oneoff.score_given`): each request is validated on its own thread, then
requests that arrive while a batch is scored are scored together as the next batch, on one scoring thread
(:mod:`custscore.api.batching`; the HTTP endpoints validate on the event loop and await the batch there, with no
thread per request); a customer's scores and reasons do not depend on its batch. Requests without
``as_of`` are scored as of the clock when their batch starts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from custscore.api.batching import Job, MicroBatcher
from custscore.api.keys import KeyGate, KeyRefused
from custscore.clock import Clock, WallClock
from custscore.config import Settings
from custscore.errors import InputError, ModelError
from custscore.models.registry import list_models
from custscore.scorer.heap import settle_long_lived
from custscore.scorer.oneoff import score_stored, score_validated, validated_customers, validated_events
from custscore.scorer.recommending import load_scoring_models, scoring_versions
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS

log = logging.getLogger(__name__)


def score_payload(result: Any) -> dict:
    """One CustomerScore as the API returns it: the score written by the worker, plus reasons per task."""
    return {"customer_id": result.customer_id, **result.score, "reasons_by_task": result.reasons_by_task}


class ScoringService:
    """The store, the production models (hot-reloaded) and the API's operations.

    Parameters
    ----------
    store : Store
        An open store; the service does not close it.
    settings : Settings
        Where the registry's cache lives.
    clock : Clock, optional
        The as-of clock of requests that give no ``as_of`` (the wall clock by default).
    reload_every_s : float
        Longest time between two checks of the promoted versions.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock | None = None, reload_every_s: float = 1.0):
        self.store = store
        self.settings = settings
        self.clock = clock or WallClock()
        self.reload_every_s = reload_every_s
        self.models: Any = None
        self.load_error: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()  # guards reloading; scoring runs on the batcher's one thread
        self.keys = KeyGate(store)
        self.batcher = MicroBatcher(self._run_batch, admit=self._admit)
        self._reload(force=True)

    # -- models ----------------------------------------------------------------------
    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.reload_every_s:
            return
        self._checked = now
        versions = scoring_versions(self.store)
        if self.models is not None and versions == self.models.versions:
            return
        if not versions:
            self.models, self.load_error = None, "no production model is registered; train one with " \
                                                  "`custscore train --task all`"
            return
        try:
            fresh = load_scoring_models(self.store, self.settings)
        except ModelError as exc:
            self.load_error = str(exc)
            log.warning("promoted models %s could not be loaded: %s", versions, exc)
            return
        if self.models is not None:
            log.info("switched models %s -> %s", self.models.versions, fresh.versions)
        self.models, self.load_error = fresh, None
        settle_long_lived()  # a full GC pass over the loaded models would land in the requests' p99

    def ready_models(self) -> Any:
        """The current production models; ModelError when there are none."""
        with self._lock:
            self._reload()
            if self.models is None:
                raise ModelError(self.load_error or "no production model is loaded")
            return self.models

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.models.versions) if self.models is not None else {}

    # -- operations --------------------------------------------------------------------
    def score(self, customers: list, events: list | None = None, as_of: Any = None, k: int | None = None) -> dict:
        """Scores, reasons (and whatever else the models write) for given customer documents."""
        self.ready_models()
        return self.scored(self.batcher.submit(self.score_job(customers, events, as_of, k)))

    def score_job(self, customers: list, events: list | None = None, as_of: Any = None, k: int | None = None,
                  key_digest: str | None = None) -> Job:
        """The validated request as a job for :attr:`batcher` (InputError naming the first bad field); with
        ``key_digest`` (from :meth:`KeyGate.admit`) the job is scored only if that key is still live."""
        when = None if as_of is None else self._as_of(as_of)
        return Job(validated_customers(customers), validated_events(events or ()), key=(when, k),
                   key_digest=key_digest)

    def _admit(self, jobs: list[Job]) -> list[KeyRefused | None]:
        """On the scoring thread, before a batch: every job's key confirmed live, all in one read."""
        live = self.keys.confirm(j.key_digest for j in jobs if j.key_digest is not None)
        return [KeyRefused() if j.key_digest is not None and j.key_digest not in live else None for j in jobs]

    @property
    def loaded(self) -> bool:
        """Models are loaded (a reload check may still be due: the scoring thread makes it)."""
        return self.models is not None

    @staticmethod
    def scored(outcome: tuple) -> dict:
        """A job's outcome as the response of :meth:`score`."""
        when, versions, results = outcome
        return {"as_of": when.isoformat(), "models": versions, "scores": [score_payload(r) for r in results]}

    def _run_batch(self, key: tuple, jobs: list[Job]) -> list[tuple]:
        """Score a group of jobs with one call (on the scoring thread); per job (as_of, versions, results)."""
        when, k = key
        when = when or self.clock.now()
        models = self.ready_models()
        docs = [d for job in jobs for d in job.customers]
        events = [e for job in jobs for e in job.events]
        results = score_validated(self.store, models, docs, events, as_of=when, k=k)
        if len(results) != len(docs):
            raise ModelError(f"scored {len(results)} of {len(docs)} customers; score the requests one by one")
        out, start = [], 0
        for job in jobs:
            out.append((when, dict(models.versions), results[start:start + len(job.customers)]))
            start += len(job.customers)
        return out

    def explain(self, customers: list, events: list | None = None, as_of: Any = None, top: int = 5) -> dict:
        """Like :meth:`score` with ``top`` reasons per task, each with its SHAP contribution and units."""
        out = self.score(customers, events, as_of, k=top)
        models = self.ready_models()
        out["units"] = {t: e.units for t, e in models.explainers.items()}
        return out

    def explain_stored(self, customer_id: str, as_of: Any = None, top: int = 5) -> dict | None:
        """Explain a stored customer (``custscore explain``'s path), or None if there is no such customer."""
        models = self.ready_models()
        when = self._as_of(as_of)
        results = self.batcher.call(lambda: score_stored(self.store, models, [customer_id], as_of=when, k=top))
        if not results:
            return None
        return {"as_of": when.isoformat(), "models": dict(models.versions),
                "units": {t: e.units for t, e in models.explainers.items()},
                "scores": [score_payload(r) for r in results]}

    def stored_score(self, customer_id: str) -> dict | None:
        """The score the worker wrote on a stored customer, or None if there is no such customer."""
        doc = self.store[CUSTOMERS].find_one({"_id": customer_id}, projection={"score": 1})
        if doc is None:
            return None
        return {"customer_id": customer_id, "score": doc.get("score")}

    def model_list(self) -> dict:
        """The production versions and every registered model (newest first)."""
        with self._lock:
            self._reload()
        return {"production": scoring_versions(self.store), "loaded": self.versions,
                "models": list_models(self.store)}

    def _as_of(self, value: Any):
        if value is None:
            return self.clock.now()
        from custscore.clock import parse_date

        try:
            return parse_date(value, "as_of", end_of_day=True)
        except Exception as exc:  # ConfigError from the parser: the caller's input
            raise InputError(str(exc)) from exc
