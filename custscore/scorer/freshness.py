"""The freshness sweep: re-score customers whose score has aged past ``--max-age``.

Churn risk grows while nothing happens, so a worker driven only by changes
would never raise the risk of a customer going quiet. Between feed batches the
worker asks :class:`FreshnessSweep` for the next page of stale scores, oldest
``score.as_of`` first, read through the index on ``score.as_of`` in pages of
at most one batch: it never scans every customer on every loop. A pass ends
when a page comes back short; the next starts after ``interval_s``.

Age is measured against the as-of clock, so a fixed or fake clock drives it.
A score counts as stale when its as-of time is older than ``max_age`` *and*
lies on an earlier day than the clock's: the replay key includes the as-of
day (``writeback.is_replay``), so a re-score on the same day would write
nothing and sub-day ages mean "once a day". A score from a *later* day than
the clock (``--as-of`` set back for a replay) is stale too: each pass pages
through the old range first, then that one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from custscore.clock import Clock
from custscore.scorer.feed import Item
from custscore.scorer.partition import Partition
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS

log = logging.getLogger(__name__)

AS_OF_FIELD = "score.as_of"
DEFAULT_MAX_AGE = dt.timedelta(days=1)
DEFAULT_INTERVAL_S = 60.0
# A pass counts its stale scores for the panel through the index, but stops at this many: a full count
# decodes every candidate on the embedded store (1.7-2.2 s at 20k stale customers) and would stall the feed.
STALE_COUNT_CAP = 1024


def stale_cutoff(as_of: dt.datetime, max_age: dt.timedelta) -> dt.datetime:
    """Scores with ``score.as_of`` before this are stale: ``max_age`` old and from an earlier day."""
    midnight = dt.datetime.combine(as_of.date(), dt.time())
    return min(as_of - max_age, midnight)


def stale_filters(as_of: dt.datetime, max_age: dt.timedelta) -> list[dict]:
    """Store filters (index ranges on ``score.as_of``) of stale scores: too old, then from a later day."""
    end_of_day = dt.datetime.combine(as_of.date(), dt.time(23, 59, 59, 999000))
    return [{AS_OF_FIELD: {"$lt": stale_cutoff(as_of, max_age)}}, {AS_OF_FIELD: {"$gt": end_of_day}}]


def count_stale(store: Store, as_of: dt.datetime, max_age: dt.timedelta, cap: int | None = None) -> int:
    """How many customers have a stale score as of ``as_of`` (0 when ``max_age`` is 0: the sweep is off).

    With ``cap`` the count stops there (read oldest first through the index): cheap enough for every pass.
    """
    if max_age <= dt.timedelta(0):
        return 0
    coll = store.collection(CUSTOMERS)
    if cap is None:
        return sum(coll.count(f) for f in stale_filters(as_of, max_age))
    total = 0
    for f in stale_filters(as_of, max_age):
        total += sum(1 for _ in coll.find(f, {"_id": 1}, sort=[(AS_OF_FIELD, 1)], limit=cap - total))
        if total >= cap:
            break
    return total


class FreshnessSweep:
    """Pages of stale scores for one worker's partition, oldest first.

    Parameters
    ----------
    store : Store
        The store to read.
    clock : Clock
        The as-of clock that ages the scores.
    partition : Partition
        Only customers this worker owns become items.
    max_age : timedelta
        Re-score customers whose score is older; zero turns the sweep off.
    page_size : int
        Most customers read per page (the worker passes its batch size).
    interval_s : float
        Pause between the end of one pass and the start of the next (monotonic seconds).
    """

    def __init__(self, store: Store, clock: Clock, partition: Partition, max_age: dt.timedelta,
                 page_size: int = 256, interval_s: float = DEFAULT_INTERVAL_S):
        self.store = store
        self.clock = clock
        self.partition = partition
        self.max_age = max_age
        self.page_size = max(1, int(page_size))
        self.interval_s = interval_s
        self.stale = 0  # stale scores counted at the start of the pass, less those re-scored since
        self.stale_capped = False  # the count stopped at STALE_COUNT_CAP: there are at least that many
        self.rescored = 0  # written by the sweep, over the worker's life
        self.passes = 0
        self._skip = 0  # head rows of this range that stay stale (other partitions, failures)
        self._range = 0  # which of stale_filters() this pass is paging through
        self._in_pass = False
        self._next_pass_at = 0.0

    @property
    def enabled(self) -> bool:
        """False with ``--max-age 0``."""
        return self.max_age > dt.timedelta(0)

    def due(self) -> bool:
        """Whether a page should be read now: inside a pass, or the pause after the last pass is over."""
        return self.enabled and (self._in_pass or time.monotonic() >= self._next_pass_at)

    def next_page(self, queued: set) -> list[Item]:
        """The next page of owned stale customers not already ``queued``; ends the pass on a short page."""
        if not self.due():
            return []
        now = self.clock.now()
        filters = stale_filters(now, self.max_age)
        if not self._in_pass:
            self._in_pass, self._skip, self._range = True, 0, 0
            self.passes += 1
            self.stale = count_stale(self.store, now, self.max_age, cap=STALE_COUNT_CAP)
            self.stale_capped = self.stale >= STALE_COUNT_CAP
            log.info("freshness sweep %d: %d stale scores (older than %s, or from a later day; %s)", self.passes,
                     self.stale, stale_cutoff(now, self.max_age), self.clock.describe())
        docs = list(self.store.collection(CUSTOMERS).find(
            filters[self._range], {"_id": 1, "updated_at": 1}, sort=[(AS_OF_FIELD, 1)],
            limit=self.page_size, skip=self._skip))
        owned = [d for d in docs if self.partition.owns(d["_id"])]
        # another worker's customers stay at the head of the order until it scores them: page past them
        self._skip += len(docs) - len(owned)
        items = [Item(d["_id"], None, "sweep") for d in owned if d["_id"] not in queued]
        if len(docs) < self.page_size:  # this range is done: the next one, or the end of the pass
            self._range, self._skip = self._range + 1, 0
            if self._range >= len(filters):
                self._end_pass()
        return items

    def after_batch(self, sweep_ids: list, scored: set) -> None:
        """Book a batch: re-scored sweep customers leave the stale order, the rest (failures) stay at its head."""
        done = sum(1 for cid in sweep_ids if cid in scored)
        self.rescored += done
        self.stale = max(0, self.stale - done)
        self._skip += len(sweep_ids) - done

    def _end_pass(self) -> None:
        self._in_pass = False
        self._next_pass_at = time.monotonic() + self.interval_s
