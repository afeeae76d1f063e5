"""The ``purchase_history`` summary on each customer, kept consistent with its events.

A full summary is computed from events (simulated loads, the consistency check)
and new events are folded in with ``$inc`` / ``$min`` / ``$max`` updates, so
both paths produce the same fields:

``orders``, ``items``, ``total_spent``, ``first_purchase`` and ``last_purchase``
(absent until the first purchase), ``categories`` (orders per category).
``event_time_range`` gives the span of the stored events (status, EDA, RFM).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from custscore.store.base import Store, UpdateOne
from custscore.store.schema import EVENTS


def empty_history() -> dict:
    """The summary of a customer with no purchases."""
    # no first/last_purchase keys: $min/$max set a missing field but never replace a stored null
    return {"orders": 0, "items": 0, "total_spent": 0.0, "categories": {}}


def category_key(category: str | None) -> str:
    """A category as a safe field name (no dots, no leading '$')."""
    return (category or "unknown").replace(".", "_").lstrip("$") or "unknown"


def summarize(events: Iterable[dict]) -> dict[str, dict]:
    """customer_id -> full purchase_history computed from the given events."""
    out: dict[str, dict] = defaultdict(empty_history)
    for ev in events:
        h = out[ev["customer_id"]]
        h["orders"] += 1
        h["items"] += int(ev.get("quantity") or 1)
        h["total_spent"] += float(ev["amount"])
        ts = ev["ts"]
        h["first_purchase"] = min(h.get("first_purchase", ts), ts)
        h["last_purchase"] = max(h.get("last_purchase", ts), ts)
        key = category_key(ev.get("category"))
        h["categories"][key] = h["categories"].get(key, 0) + 1
    for h in out.values():
        h["total_spent"] = round(h["total_spent"], 2)
    return dict(out)


def increments(events: Iterable[dict], updated_at) -> list[UpdateOne]:
    """One update per customer folding the given new events into its stored summary."""
    ops = []
    for customer_id, h in summarize(events).items():
        inc = {
            "purchase_history.orders": h["orders"],
            "purchase_history.items": h["items"],
            "purchase_history.total_spent": h["total_spent"],
        }
        inc.update({f"purchase_history.categories.{k}": n for k, n in h["categories"].items()})
        ops.append(
            UpdateOne(
                {"_id": customer_id},
                {
                    "$inc": inc,
                    "$min": {"purchase_history.first_purchase": h["first_purchase"]},
                    "$max": {"purchase_history.last_purchase": h["last_purchase"]},
                    "$set": {"updated_at": updated_at},
                },
            )
        )
    return ops


def event_time_range(store: Store) -> tuple[Any, Any]:
    """Timestamps of the first and last stored event (through the ``ts`` index), or (None, None)."""
    events = store.collection(EVENTS)
    edges = [next(iter(events.find({}, {"ts": 1}, sort=[("ts", d)], limit=1)), {}).get("ts") for d in (1, -1)]
    return edges[0], edges[1]
