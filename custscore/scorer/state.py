"""The worker's document in ``scorer_state``: resume tokens, watermark, heartbeat.

``_id`` is ``worker-{workers}-{index}``. Tokens are saved only after the batch
they cover has been written, so a crash replays at most one batch.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

from custscore.clock import now
from custscore.store.base import Store
from custscore.store.schema import SCORER_STATE

ALIVE_WITHIN_S = 10.0


def load_state(store: Store, state_id: str) -> dict:
    """The worker's saved state, or an empty dict on first start."""
    return store.collection(SCORER_STATE).find_one({"_id": state_id}) or {}


def save_state(store: Store, state_id: str, **fields: Any) -> None:
    """Set ``fields`` (and ``heartbeat_at``, ``pid``, ``host``) on the worker's state document."""
    values = {"heartbeat_at": now(), "pid": os.getpid(), "host": socket.gethostname(), **fields}
    store.collection(SCORER_STATE).update_one({"_id": state_id}, {"$set": values}, upsert=True)


def alive_workers(store: Store, within_s: float = ALIVE_WITHIN_S) -> list[dict]:
    """State documents of the workers that are running and wrote a heartbeat in the last ``within_s`` seconds."""
    since = now() - dt.timedelta(seconds=within_s)
    found = store.collection(SCORER_STATE).find({"heartbeat_at": {"$gte": since}})
    return [d for d in found if d.get("running", True)]


def worker_alive(store: Store, within_s: float = ALIVE_WITHIN_S) -> bool:
    """Whether any scorer worker is running on this store (heartbeat within ``within_s`` seconds).

    Parameters
    ----------
    store : Store
        The store the workers write to.
    within_s : float
        How recent the heartbeat must be; workers beat every couple of seconds.

    Returns
    -------
    bool
        True when at least one worker is running.
    """
    return bool(alive_workers(store, within_s))
