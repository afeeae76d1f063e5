"""The stale-data warning: the newest purchase lies further before the as-of date than the churn horizon.

Scoring a log that ended months ago on the wall clock makes every customer
look lost (recency and tenure all shifted by the same gap). Scoring commands
call :func:`stale_data_warning` once and show the line it returns; the core
only returns and logs it (at info level: the CLI shows it, in yellow).
"""

from __future__ import annotations

import datetime as dt
import logging

from custscore.store.base import Store
from custscore.store.history import event_time_range
from custscore.store.schema import MODELS

log = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 90


def churn_horizon_days(store: Store) -> int:
    """The production churn model's label horizon in days (its manifest knows it), else 90."""
    doc = store.collection(MODELS).find_one({"task": "churn", "aliases": "production"}, {"extra.horizon_days": 1})
    days = ((doc or {}).get("extra") or {}).get("horizon_days")
    return int(days) if isinstance(days, int | float) and days > 0 else DEFAULT_HORIZON_DAYS


def stale_data_warning(store: Store, as_of: dt.datetime, horizon_days: int | None = None) -> str | None:
    """One line when the newest event is older than the churn horizon before ``as_of``, else None.

    Parameters
    ----------
    store : Store
        Where the events are (the newest is read through the ``ts`` index).
    as_of : datetime
        The as-of time scores are computed for.
    horizon_days : int, optional
        The churn horizon; default: the production churn model's, else 90 days.

    Returns
    -------
    str or None
        E.g. ``the data looks stale: the newest event is 2024-06-30, 519 days before the as-of date
        2025-12-01 (churn horizon 90 days); score as of the data's end with --as-of 2024-06-30 (or
        CUSTSCORE_AS_OF=2024-06-30)``.
    """
    _, newest = event_time_range(store)
    if not isinstance(newest, dt.datetime):
        return None
    horizon = horizon_days or churn_horizon_days(store)
    gap = (as_of - newest).days
    if gap <= horizon:
        return None
    day = f"{newest:%Y-%m-%d}"
    message = (f"the data looks stale: the newest event is {day}, {gap:,} days before the as-of date "
               f"{as_of:%Y-%m-%d} (churn horizon {horizon} days); score as of the data's end with --as-of {day} "
               f"(or CUSTSCORE_AS_OF={day})")
    log.info("%s", message)
    return message
