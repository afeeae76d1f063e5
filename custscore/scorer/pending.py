"""The one set of customers waiting to be scored, whatever asked for it.

A customer can be asked for by the change feed, the start-up scan (no score,
or a score from other models) and the freshness sweep at the same time. It is
held here once: a feed change replaces a queued scan or sweep entry (it has the
real arrival time and it pins the resume tokens), and a scan or sweep entry
for a customer already waiting is dropped. Entries leave only when the batch
that scored them has been written (:meth:`PendingSet.done`), so a failed write
loses nothing and a customer is scored once per input version and clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from custscore.scorer.feed import Item


class PendingSet:
    """Customers to score: feed changes first (they hold the tokens back), then the scan/sweep queue in order."""

    def __init__(self) -> None:
        self._feed: dict[Any, Item] = {}
        self._queued: dict[Any, Item] = {}

    def __len__(self) -> int:
        return len(self._feed) + len(self._queued)

    def __contains__(self, customer_id: Any) -> bool:
        return customer_id in self._feed or customer_id in self._queued

    @property
    def feed_count(self) -> int:
        """Customers asked for by the feeds; the resume tokens may move only when this is 0."""
        return len(self._feed)

    @property
    def queued_count(self) -> int:
        """Customers asked for by the scan or the sweep."""
        return len(self._queued)

    def ids(self) -> set:
        """Every waiting customer id."""
        return set(self._feed) | set(self._queued)

    def add_feed(self, item: Item) -> None:
        """A change from a feed; keeps the earliest arrival when the customer is already waiting."""
        cid = item.customer_id
        self._queued.pop(cid, None)
        known = self._feed.get(cid)
        if known is None or (item.arrival is not None and (known.arrival is None or item.arrival < known.arrival)):
            self._feed[cid] = item

    def add_queued(self, items: Iterable[Item]) -> int:
        """Scan or sweep entries, skipping customers already waiting; returns how many were added."""
        added = 0
        for item in items:
            if item.customer_id not in self:
                self._queued[item.customer_id] = item
                added += 1
        return added

    def take(self, limit: int, top_up: bool = True) -> dict[Any, Item]:
        """The next batch without removing it: every feed entry, then queued ones up to ``limit`` in all."""
        batch = dict(self._feed)
        if top_up:
            for cid in islice(self._queued, max(0, limit - len(batch))):
                batch[cid] = self._queued[cid]
        return batch

    def done(self, ids: Iterable[Any]) -> None:
        """Forget customers whose batch was written (scored, replayed, failed or gone)."""
        for cid in ids:
            self._feed.pop(cid, None)
            self._queued.pop(cid, None)
