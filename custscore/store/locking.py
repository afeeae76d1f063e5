"""Waiting for a write lock another process holds: long-running processes wait and say so, one-shot ones give up.

The embedded store lets one process write at a time (SQLite's write lock). A
one-shot command (``ingest``, ``insert``, ``score --once``) waits up to 60 s
for it, then stops with :class:`~custscore.errors.StoreBusy` and a message
saying what to do. ``score --watch`` and ``simulate --stream`` call
:func:`wait_for_write_lock` first: they then wait as long as it takes, with
growing pauses (1 s, 2 s, 4 s ... 30 s), reporting each one. MongoDB has no
such lock, so this is a no-op there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from custscore.store.base import Store

log = logging.getLogger(__name__)


def _log_wait(waited: float) -> None:
    log.warning("the store's write lock is held by another process; waiting (%.0f s so far)", waited)


def wait_for_write_lock(store: Store, on_wait: Callable[[float], None] | None = None) -> bool:
    """Make every write of ``store`` wait for a held write lock instead of failing.

    Parameters
    ----------
    store : Store
        An open store.
    on_wait : callable, optional
        Called with the seconds waited so far each time the wait goes on (default: a log warning).

    Returns
    -------
    bool
        True when the store has such a lock (embedded, memory), False on MongoDB.
    """
    engine = getattr(store, "engine", None)
    if engine is None or not hasattr(engine, "lock_wait"):
        return False
    engine.lock_wait = on_wait or _log_wait
    return True
