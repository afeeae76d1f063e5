"""Following the ``customers`` and ``events`` change feeds, and the scans that cover what a feed cannot.

Pattern (as in store/mirror.py): take the feed positions first, then scan,
then follow, so nothing written during the scan is missed. A changed customer
is a candidate itself; an event makes its ``customer_id`` a candidate. Changes
of customers owned by another worker, and the echo of our own ``score``
write, are dropped here without touching the models. When a resume token is
too old for the feed (``ChangeFeedLost``) the follower says so, restarts from
"now" and reports ``lost`` so the worker rescans from its watermark.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from custscore.clock import now
from custscore.errors import ChangeFeedLost
from custscore.scorer.partition import Partition
from custscore.scorer.writeback import is_echo, models_key
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS, EVENTS

log = logging.getLogger(__name__)

FEEDS = (CUSTOMERS, EVENTS)
ECHO_FIELDS = ("score",)  # what the worker writes on a customer
# A loader stamps updated_at before its transaction commits: rescan this far before the watermark.
WATERMARK_MARGIN = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Item:
    """A customer to (re)score and when the change that asks for it arrived."""

    customer_id: Any
    arrival: dt.datetime | None
    source: str  # "customers", "events" or "scan"


@dataclass
class FeedRead:
    """One poll of both feeds."""

    items: list[Item] = field(default_factory=list)
    changes: int = 0  # changes read, including skipped ones
    caught_up: bool = True
    lost: bool = False


def positions(store: Store) -> dict[str, str]:
    """Tokens for "now" on every followed feed."""
    return {name: store.feed_position(name) for name in FEEDS}


class FeedFollower:
    """Reads both feeds from in-memory tokens; the worker saves ``tokens`` once a batch is written.

    Parameters
    ----------
    store : Store
        The store to follow.
    partition : Partition
        Only customers this worker owns become items.
    tokens : dict
        Feed name -> resume token to start after.
    """

    def __init__(self, store: Store, partition: Partition, tokens: dict[str, str]):
        self.store = store
        self.partition = partition
        self.tokens = dict(tokens)
        self.read_at: dt.datetime | None = None  # when the poll that produced ``tokens`` started
        self.echoes = 0
        self._turn = 0

    def poll(self, limit: int, versions: dict[str, str]) -> FeedRead:
        """Read up to ``limit`` changes (both feeds together) without blocking."""
        read = FeedRead()
        started = now()
        order = FEEDS if self._turn % 2 == 0 else FEEDS[::-1]  # neither feed starves the other
        self._turn += 1
        for name in order:
            room = limit - read.changes
            if room <= 0:
                read.caught_up = False
                break
            try:
                # our own score write-back never asks for a score: MongoDB drops those echoes server-side
                batch = self.store.changes(name, after=self.tokens.get(name), limit=room,
                                           ignore_fields=ECHO_FIELDS if name == CUSTOMERS else ())
            except ChangeFeedLost as exc:
                log.warning("change feed %s lost its history (%s); rescanning from the watermark instead", name, exc)
                self.tokens = positions(self.store)
                read.lost = True
                break
            read.changes += len(batch.changes)
            if len(batch.changes) >= room:
                read.caught_up = False
            self.tokens[name] = batch.token or self.tokens.get(name)
            read.items.extend(self._items(name, batch.changes, versions))
        self.read_at = started
        return read

    def _items(self, name: str, changes: list, versions: dict[str, str]) -> Iterator[Item]:
        for change in changes:
            doc = change.document
            if name == CUSTOMERS:
                if not self.partition.owns(change.doc_id):
                    continue
                if is_echo(doc, versions):
                    self.echoes += 1
                    continue
                yield Item(change.doc_id, doc.get("updated_at"), CUSTOMERS)
            else:
                cid = doc.get("customer_id")
                if cid is not None and self.partition.owns(cid):
                    yield Item(cid, doc.get("ingested_at"), EVENTS)


def stale_items(store: Store, versions: dict[str, str], partition: Partition) -> list[Item]:
    """Owned customers with no score, or a score from other model versions than ``versions``.

    The indexed ``score.models_key`` narrows the read to scores of other versions (and those written before the
    key existed, or none); ``model_versions`` decides here. A start no longer reads every customer: on 5,000
    current customers the scan took 508 ms that way, and takes 13 ms through the index.
    """
    if not versions:
        docs = store.collection(CUSTOMERS).find({"score": {"$exists": False}}, {"_id": 1, "updated_at": 1})
        return [Item(d["_id"], d.get("updated_at"), "scan") for d in docs if partition.owns(d["_id"])]
    wanted = sorted(versions.items())
    out = []
    narrowed = {"score.models_key": {"$ne": models_key(versions)}}
    for d in store.collection(CUSTOMERS).find(narrowed, {"_id": 1, "updated_at": 1, "score.model_versions": 1}):
        score = d.get("score")
        stored = score.get("model_versions") if isinstance(score, dict) else None
        current = isinstance(stored, dict) and all(stored.get(task) == v for task, v in wanted)
        if not current and partition.owns(d["_id"]):
            out.append(Item(d["_id"], d.get("updated_at"), "scan"))
    return out


def changed_items(store: Store, since: dt.datetime | None, partition: Partition) -> list[Item]:
    """Owned customers changed (or with events ingested) at or after ``since``; every customer if None."""
    customers = store.collection(CUSTOMERS)
    if since is None:
        docs = customers.find({}, {"_id": 1, "updated_at": 1})
        return [Item(d["_id"], d.get("updated_at"), "scan") for d in docs if partition.owns(d["_id"])]
    out = {
        d["_id"]: Item(d["_id"], d.get("updated_at"), "scan")
        for d in customers.find({"updated_at": {"$gte": since}}, {"_id": 1, "updated_at": 1})
        if partition.owns(d["_id"])
    }
    # events written without touching their customer (an app writing directly)
    for ev in store.collection(EVENTS).find({"ingested_at": {"$gte": since}}, {"customer_id": 1, "ingested_at": 1}):
        cid = ev.get("customer_id")
        if cid is not None and cid not in out and partition.owns(cid):
            out[cid] = Item(cid, ev.get("ingested_at"), "scan")
    return list(out.values())


def rescan_items(store: Store, watermark: dt.datetime | None, versions: dict[str, str], partition: Partition) -> list[Item]:
    """What to rescore after the feed lost its history: changed since the watermark, plus stale scores."""
    since = watermark - WATERMARK_MARGIN if watermark is not None else None
    items = {i.customer_id: i for i in changed_items(store, since, partition)}
    for item in stale_items(store, versions, partition):
        items.setdefault(item.customer_id, item)
    log.info("rescan after a lost change feed: %d customers to check (since %s)", len(items), since or "the start")
    return list(items.values())
