"""What is in the store: backend, counts per collection, event date range, registered models."""

from __future__ import annotations

from dataclasses import dataclass, field

from custscore.store.base import Store
from custscore.store.history import event_time_range
from custscore.store.schema import COLLECTIONS, CUSTOMERS, EVENTS, MODELS


@dataclass
class StoreStatus:
    """A snapshot of the store for ``custscore status``."""

    backend: str
    location: str
    counts: dict[str, int]
    first_event: object = None
    last_event: object = None
    simulated_customers: int = 0
    models: list[dict] = field(default_factory=list)


def store_status(store: Store) -> StoreStatus:
    """Collect counts, the events' date range and the model registry entries."""
    counts = {name: store.collection(name).count() for name in COLLECTIONS}
    status = StoreStatus(store.backend, store.location, counts)
    if counts[EVENTS]:
        status.first_event, status.last_event = event_time_range(store)
    if counts[CUSTOMERS]:
        status.simulated_customers = store.collection(CUSTOMERS).count({"_truth": {"$exists": True}})
    if counts[MODELS]:
        status.models = list(
            store.collection(MODELS).find({}, {"task": 1, "version": 1, "aliases": 1, "created_at": 1}, sort=[("task", 1)])
        )
    return status
