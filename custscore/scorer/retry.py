"""Retrying dead letters: re-read each dead-lettered customer and score it through the batch path.

It sits above both :mod:`custscore.scorer.deadletters` (recording and listing letters) and
:mod:`custscore.scorer.batch` (scoring, which records new letters), so neither imports the other back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from custscore.clock import now
from custscore.scorer.batch import score_customers
from custscore.store.base import DeleteOne, Store, UpdateOne
from custscore.store.schema import DEAD_LETTERS

log = logging.getLogger(__name__)


@dataclass
class RetryReport:
    """What ``retry_dead_letters`` did."""

    scored: int = 0
    still_bad: int = 0
    gone: int = 0


def retry_dead_letters(store: Store, models: Any, limit: int = 0) -> RetryReport:
    """Re-read each dead-lettered customer: score it if it is valid now, else count one more attempt.

    Parameters
    ----------
    store : Store
        The store holding ``dead_letters`` and ``customers``.
    models : ProductionModels
        The loaded production models.
    limit : int
        Retry at most this many dead letters (0 for all), oldest first.

    Returns
    -------
    RetryReport
        Customers scored (their dead letters deleted), still unscorable
        (``attempts`` + 1, reason refreshed) and gone from ``customers``
        (dead letter deleted).
    """
    letters = list(store.collection(DEAD_LETTERS).find({}, sort=[("created_at", 1)], limit=max(int(limit), 0)))
    report = RetryReport()
    if not letters:
        return report
    ids = list(dict.fromkeys(d.get("doc_id", d.get("customer_id")) for d in letters))
    outcome = score_customers(store, models, ids, record_dead_letters=False)
    stamp = now()
    gone = set(outcome.missing)
    ops: list = []
    for letter in letters:
        doc_id = letter.get("doc_id", letter.get("customer_id"))
        if doc_id in gone:
            report.gone += 1
            ops.append(DeleteOne({"_id": letter["_id"]}))
        elif doc_id in outcome.failed:
            report.still_bad += 1
            ops.append(UpdateOne(
                {"_id": letter["_id"]},
                {"$inc": {"attempts": 1}, "$set": {"last_retry_at": stamp, "last_reason": outcome.failed[doc_id]}},
            ))
        else:
            report.scored += 1  # its dead letters were deleted with the score write
    store.collection(DEAD_LETTERS).bulk_write(ops)
    log.info("dead letters retried: %d scored, %d still bad, %d gone", report.scored, report.still_bad, report.gone)
    return report
