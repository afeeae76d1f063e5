"""What the scorer has left in the store, read through the scorer's own collections: for the report and status.

The report (analytics) sits beside the scorer, not above it, so it does not read these collections itself; the
command that builds the report reads :func:`scorer_health` and hands the plain dict over.
"""

from __future__ import annotations

from typing import Any

from custscore.store.base import Store
from custscore.store.schema import DEAD_LETTERS, PREDICTIONS, SCORER_STATE


def scorer_health(store: Store) -> dict[str, Any]:
    """Counts of prediction records and dead letters, and each worker's state without its resume tokens.

    Returns
    -------
    dict
        ``{"predictions": int, "dead_letters": int, "workers": [dict, ...]}``; a worker's dict keeps its scalar
        fields (``_id``, ``heartbeat_at``, ``pid``, ``host``, ``running``, ...) and drops nested ones (tokens).
    """
    workers = [{k: v for k, v in d.items() if not isinstance(v, dict | list)}
               for d in store.collection(SCORER_STATE).find({})]
    return {"predictions": store.collection(PREDICTIONS).count(),
            "dead_letters": store.collection(DEAD_LETTERS).count(), "workers": workers}
