"""Score a set of customers end to end: read, check, predict and explain, write once.

Used by the worker for every micro-batch, by ``retry.retry_dead_letters`` and by
``insert --wait`` when it scores inline.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from custscore.clock import now as utc_now
from custscore.errors import LimitExceeded, StoreError
from custscore.models import features, input_version
from custscore.models.predict import HOT_PATH_NO_SHAP
from custscore.scorer.batch_events import BatchEvents, event_fields
from custscore.scorer.deadletters import check_customer, dead_letter_op, letter_hash, open_dead_letters
from custscore.scorer.writeback import ScoredRow, doc_hash, is_replay, same_day, write_batch
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What scoring one batch did, per customer id."""

    scored: list = field(default_factory=list)  # written (new input or new models)
    replayed: list = field(default_factory=list)  # result equal to the stored score: nothing written
    failed: dict = field(default_factory=dict)  # id -> reason (dead letter)
    missing: list = field(default_factory=list)  # no longer in the store
    scores: dict = field(default_factory=dict)  # id -> score written
    predictions_inserted: int = 0
    dead_letters_new: int = 0
    scored_at: dt.datetime | None = None


Score = Callable[[list[dict]], list]


def _score_isolating(score: Score, docs: list[dict]) -> list:
    """``score(docs)``, bisecting on an unexpected exception so one poison document cannot stall the rest."""
    try:
        return list(score(docs))
    except StoreError:
        raise  # the store is down: no document is to blame
    except Exception as exc:
        if len(docs) == 1:
            log.warning("scoring customer %r failed: %s", docs[0].get("_id"), exc)
            reason = f"scoring failed: {type(exc).__name__}: {exc}"
            return [SimpleNamespace(customer_id=docs[0]["_id"], error=reason)]
        half = len(docs) // 2
        return _score_isolating(score, docs[:half]) + _score_isolating(score, docs[half:])


def _batch_events(store: Store, models: Any, docs: list[dict], as_of: dt.datetime) -> BatchEvents | None:
    """The batch's events, read once, for models that score given events (``score_documents``); None for
    models that read their own (``score_batch`` only)."""
    if not callable(getattr(models, "score_documents", None)):
        return None
    return BatchEvents.read(store, [str(d["_id"]) for d in docs], as_of, event_fields(models, features.EVENT_FIELDS))


def _scorer(store: Store, models: Any, as_of: dt.datetime, events: BatchEvents | None) -> Score:
    if events is None:
        return lambda docs: models.score_batch(store, docs, as_of)
    return lambda docs: models.score_documents(
        docs, events.for_customers([str(d["_id"]) for d in docs]), as_of, skip_shap=HOT_PATH_NO_SHAP)


def _unchanged(good: list[dict], docs: dict, hashes: dict, versions: dict, as_of: dt.datetime,
               events: BatchEvents) -> set:
    """Ids whose stored score was computed from exactly these inputs by these models on this as-of day.

    Only customers whose document hash and models match the stored score are candidates; their input
    versions (the same function the models use) decide. A customer asked for twice (its events feed
    change read after the batch that scored it) is then not computed again.
    """
    candidates = []
    for clean in good:
        stored = docs[clean["_id"]].get("score")
        if (isinstance(stored, dict) and stored.get("doc_hash") == hashes[clean["_id"]]
                and stored.get("model_versions") == versions and same_day(stored.get("as_of"), as_of)):
            candidates.append(clean)
    if not candidates:
        return set()
    current = input_version.input_versions(candidates, events.for_customers([str(c["_id"]) for c in candidates]))
    return {c["_id"] for c in candidates
            if is_replay(docs[c["_id"]].get("score"), current.get(str(c["_id"])), versions, as_of)}


def _write_isolating(
    store: Store, rows: list[ScoredRow], dl_ops: list, stamp: dt.datetime, worker: str | None,
    resolved: list, docs: dict, outcome: BatchOutcome, record_dead_letters: bool,
) -> tuple[list[ScoredRow], Any, dict]:
    """Write each row on its own; a row the store refuses becomes a dead letter with the store's reason."""
    kept: list[ScoredRow] = []
    scores: dict = {}
    for row in rows:
        try:
            _, one = write_batch(store, [row], [], stamp, worker, [])
        except LimitExceeded as exc:
            reason = f"the score cannot be written: {exc}"
            outcome.failed[row.customer_id] = reason
            if record_dead_letters:
                doc = docs[row.customer_id]
                dl_ops.append(dead_letter_op(doc, reason, letter_hash(doc), stamp, worker))
            continue
        kept.append(row)
        scores.update(one)
    written, _ = write_batch(store, [], dl_ops, stamp, worker, resolved)
    written.predictions_inserted = len(kept)
    return kept, written, scores


def _hash_or_none(doc: dict) -> str | None:
    try:
        return doc_hash(doc)
    except (RecursionError, TypeError, ValueError):  # unhashable: check_customer turns it into a dead letter
        return None


def score_customers(
    store: Store,
    models: Any,
    ids: Sequence[Any],
    arrivals: dict[Any, dt.datetime | None] | None = None,
    *,
    worker: str | None = None,
    record_dead_letters: bool = True,
    clock: Callable[[], dt.datetime] = utc_now,
    as_of: dt.datetime | None = None,
) -> BatchOutcome:
    """Score the current documents of ``ids`` and write the results as one unit.

    Parameters
    ----------
    store : Store
        Where the customers are and the results go.
    models : ProductionModels
        Loaded production models (``versions``, ``score_batch``).
    ids : sequence
        Customer ``_id`` values (duplicates ignored).
    arrivals : dict, optional
        id -> when the change arrived, for ``latency_ms``; defaults to the
        document's ``updated_at``.
    worker : str, optional
        Worker id stored on prediction records and dead letters.
    record_dead_letters : bool
        Write dead letters for documents that cannot be scored.
    clock : callable
        Naive-UTC "now" of the write (``scored_at``).
    as_of : datetime, optional
        The time the features describe (events after it are ignored), written
        as ``score.as_of``; default ``clock()``. Part of the replay key by day.

    Returns
    -------
    BatchOutcome
        Which customers were scored, replayed, failed or missing.

    Raises
    ------
    StoreError
        Reading or writing failed; nothing of the batch is written then
        (one transaction on the embedded store and MongoDB replica sets).
    """
    arrivals = arrivals or {}
    wanted = list(dict.fromkeys(ids))
    outcome = BatchOutcome()
    if not wanted:
        return outcome
    docs = {d["_id"]: d for d in store.collection(CUSTOMERS).find({"_id": {"$in": wanted}})}
    good: list[dict] = []
    for cid in wanted:
        doc = docs.get(cid)
        if doc is None:
            outcome.missing.append(cid)
            continue
        clean, reason = check_customer(doc)
        if clean is None:
            outcome.failed[cid] = reason
        else:
            good.append(clean)
    as_of = as_of or clock()
    hashes = {cid: _hash_or_none(docs[cid]) for cid in docs}
    events = _batch_events(store, models, good, as_of) if good else None
    if events is not None:
        unchanged = _unchanged(good, docs, hashes, dict(models.versions), as_of, events)
        outcome.replayed.extend(c["_id"] for c in good if c["_id"] in unchanged)
        good = [c for c in good if c["_id"] not in unchanged]
    results = _score_isolating(_scorer(store, models, as_of, events), good) if good else []
    by_id = {r.customer_id: r for r in results}
    rows: list[ScoredRow] = []
    for clean in good:
        cid = clean["_id"]
        result = by_id.get(cid)
        if result is None:
            outcome.failed[cid] = "the models returned no score for this customer"
        elif getattr(result, "error", None):
            outcome.failed[cid] = str(result.error)
        else:
            versions = dict(result.score.get("model_versions") or models.versions)
            if is_replay(docs[cid].get("score"), result.input_version, versions, as_of):
                outcome.replayed.append(cid)
            else:
                arrival = arrivals.get(cid) or docs[cid].get("updated_at")
                rows.append(ScoredRow(cid, result, versions, hashes[cid] or doc_hash(docs[cid]), arrival, as_of))
    stamp = clock()
    dl_ops = []
    if record_dead_letters:
        dl_ops = [dead_letter_op(docs[cid], reason, letter_hash(docs[cid]), stamp, worker)
                  for cid, reason in outcome.failed.items()]
    resolved = open_dead_letters(store, [r.customer_id for r in rows] + outcome.replayed)
    try:
        written, outcome.scores = write_batch(store, rows, dl_ops, stamp, worker, resolved)
    except LimitExceeded:  # one customer's score cannot be written (e.g. past 16 MB): write the rest one by one
        rows, written, outcome.scores = _write_isolating(
            store, rows, dl_ops, stamp, worker, resolved, docs, outcome, record_dead_letters)
    outcome.scored = [r.customer_id for r in rows]
    outcome.predictions_inserted = written.predictions_inserted
    outcome.dead_letters_new = written.dead_letters
    outcome.scored_at = stamp
    for cid, reason in outcome.failed.items():
        log.info("customer %r cannot be scored: %s", cid, reason)
    return outcome
