"""What is in the store: backend, counts per collection, event date range, registered models."""

from __future__ import annotations

from dataclasses import dataclass, field

from custscore.store.base import Store
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
        events = store.collection(EVENTS)
        status.first_event = next(iter(events.find({}, {"ts": 1}, sort=[("ts", 1)], limit=1)), {}).get("ts")
        status.last_event = next(iter(events.find({}, {"ts": 1}, sort=[("ts", -1)], limit=1)), {}).get("ts")
    if counts[CUSTOMERS]:
        status.simulated_customers = store.collection(CUSTOMERS).count({"_truth": {"$exists": True}})
    if counts[MODELS]:
        status.models = list(
            store.collection(MODELS).find({}, {"task": 1, "version": 1, "aliases": 1, "created_at": 1}, sort=[("task", 1)])
        )
    return status
