"""Bulk loads through validation: good documents stored, bad ones reported, nothing half-way.

Each batch is one transaction (atomic on the embedded store and on a MongoDB
replica set): its customers/events and the purchase_history updates they cause
land together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import bson

from custscore.clock import now
from custscore.errors import DuplicateKeyError, InputError
from custscore.store import history
from custscore.store.base import Store, UpdateOne
from custscore.store.schema import CUSTOMERS, EVENTS
from custscore.store.validation import Problem, validate_customer, validate_event

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass
class LoadReport:
    """What a load did: counts, and every refused document with its reason."""

    inserted: int = 0
    updated: int = 0
    skipped: int = 0  # unchanged (customers) or already stored (events)
    merged: int = 0  # events: rows identical to an earlier row of the same input, stored once
    duplicates: int = 0  # customers whose id came earlier in the same load (the last one is stored)
    problems: list[Problem] = field(default_factory=list)
    stored_ids: list | None = None  # customers stored, in first-seen order (when asked for)

    @property
    def rejected(self) -> int:
        """Number of documents refused (a document may have several problems)."""
        return len({p.index for p in self.problems})


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Lists of up to ``size`` items from any iterable."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")


def _without_id(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_id"}


def _differs(stored: dict, doc: dict) -> bool:
    """Whether ``doc`` would change ``stored`` (compared as stored: BSON keeps milliseconds)."""
    as_stored = bson.decode(bson.encode(doc))
    return any(stored.get(k) != v for k, v in as_stored.items() if k != "_id")


def event_id(doc: dict) -> str:
    """A content id for an event without one, so loading the same file twice adds nothing."""
    key = "|".join(str(doc.get(k)) for k in ("customer_id", "ts", "amount", "quantity", "category", "product_id", "channel"))
    # store and promo only when given, so ids of events without them stay what they always were
    key += "".join(f"|{k}={doc[k]}" for k in ("store_id", "promo") if doc.get(k) is not None)
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def load_customers(
    store: Store, docs: Iterable[dict], batch_size: int = 5000, start_index: int = 0, on_progress: Progress | None = None,
    collect_ids: bool = False,
) -> LoadReport:
    """Insert new customers and update the profile of known ones (purchase history and scores kept).

    A :class:`Problem` among ``docs`` (a reader's "could not parse this one") is reported as it is.
    Each document counts once: inserted, updated, unchanged (``skipped``), a duplicate of an id
    earlier in the same load (the last one is stored), or rejected. ``collect_ids`` fills
    ``report.stored_ids``.
    """
    _check_batch_size(batch_size)
    report = LoadReport(stored_ids=[] if collect_ids else None)
    coll = store.collection(CUSTOMERS)
    seen: set = set()  # ids of earlier chunks
    for n, chunk in enumerate(chunks(docs, batch_size)):
        good: dict[str, dict] = {}
        for i, raw in enumerate(chunk, start=start_index + n * batch_size):
            if isinstance(raw, Problem):
                report.problems.append(raw)
                continue
            doc, problems = validate_customer(raw, i)
            report.problems.extend(problems)
            if doc is not None:
                if doc["_id"] in good or doc["_id"] in seen:
                    report.duplicates += 1
                good[doc["_id"]] = doc  # a later row for the same id wins
        again = {i for i in good if i in seen}  # counted in an earlier chunk already
        stamp = now()
        with store.transaction():
            fields = dict.fromkeys({k for d in good.values() for k in d}, 1)
            current = {d["_id"]: d for d in coll.find({"_id": {"$in": list(good)}}, fields)}
            known = set(current)
            new = [
                {**d, "purchase_history": history.empty_history(), "updated_at": stamp}
                for i, d in good.items()
                if i not in known
            ]
            coll.insert_many(new)
            # a profile equal to the stored one is left alone (no write, no rescore): "unchanged"
            changed = [i for i in known if _differs(current[i], good[i])]
            coll.bulk_write(
                [UpdateOne({"_id": i}, {"$set": {**_without_id(good[i]), "updated_at": stamp}}) for i in changed]
            )
        counted = [i for i in known if i not in again]
        modified = len([i for i in changed if i not in again])
        report.inserted += len(new)
        report.updated += modified
        report.skipped += len(counted) - modified
        if report.stored_ids is not None:
            report.stored_ids.extend(i for i in good if i not in seen)
        seen.update(good)
        if on_progress:
            on_progress(len(chunk))
    return report


def load_events(
    store: Store, docs: Iterable[dict], batch_size: int = 5000, start_index: int = 0, on_progress: Progress | None = None
) -> LoadReport:
    """Append events of known customers and fold them into their purchase_history.

    Events without ``event_id`` get a content id, so an event already stored is
    skipped (counted in ``skipped``) instead of being counted twice. Rows identical
    to an earlier row of the same input get the same content id too: they are
    stored once and counted in ``merged`` (two real purchases that look the same
    need an ``event_id`` to be kept apart).
    """
    _check_batch_size(batch_size)
    report = LoadReport()
    this_load: set[str] = set()  # ids stored or merged by this call, to tell "identical row" from "stored before"
    events, customers = store.collection(EVENTS), store.collection(CUSTOMERS)
    for n, chunk in enumerate(chunks(docs, batch_size)):
        valid: list[tuple[int, dict]] = []
        for i, raw in enumerate(chunk, start=start_index + n * batch_size):
            doc, problems = validate_event(raw, i)
            report.problems.extend(problems)
            if doc is not None:
                doc.setdefault("_id", event_id(doc))
                valid.append((i, doc))
        stamp = now()
        with store.transaction():
            ids = list({d["customer_id"] for _, d in valid})
            known = {d["_id"] for d in customers.find({"_id": {"$in": ids}}, {"_id": 1})}
            stored = {d["_id"] for d in events.find({"_id": {"$in": [d["_id"] for _, d in valid]}}, {"_id": 1})}
            fresh: dict = {}
            for i, doc in valid:
                if doc["customer_id"] not in known:
                    report.problems.append(
                        Problem(i, "customer_id", doc["customer_id"], "unknown customer; ingest customers first")
                    )
                elif doc["_id"] in fresh or doc["_id"] in this_load:
                    report.merged += 1
                elif doc["_id"] in stored:
                    report.skipped += 1
                    this_load.add(doc["_id"])
                else:
                    fresh[doc["_id"]] = {**doc, "ingested_at": stamp}
            events.insert_many(list(fresh.values()))
            customers.bulk_write(history.increments(fresh.values(), stamp))
        report.inserted += len(fresh)
        this_load.update(fresh)
        if on_progress:
            on_progress(len(chunk))
    return report


def load_simulated(store: Store, customers: list[dict], events: list[dict]) -> None:
    """Store one simulated batch: customers with their summaries, and their events, atomically."""
    stamp = now()
    summaries = history.summarize(events)
    docs = [
        {**c, "purchase_history": summaries.get(c["_id"], history.empty_history()), "updated_at": stamp}
        for c in customers
    ]
    with store.transaction():
        try:
            store.collection(CUSTOMERS).insert_many(docs)
        except DuplicateKeyError as exc:
            raise InputError(
                "the store already holds these simulated customers; add --reset to replace them "
                "or choose another --seed/--id-prefix"
            ) from exc
        store.collection(EVENTS).insert_many([{**e, "ingested_at": stamp} for e in events])
