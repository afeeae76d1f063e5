"""Shared pieces of the hostile-input tests: stores, good customers, deep documents."""

from __future__ import annotations

import datetime as dt

from custscore.config import Settings
from custscore.store import limits, open_store
from custscore.store.schema import CUSTOMERS

GOOD = {"signup_date": dt.datetime(2023, 5, 1), "age": 40, "income": 52000.0, "region": "north",
        "channel": "web", "support_tickets": 1, "customer_satisfaction": 7}


def memory_store(tmp_path):
    """A fresh in-memory store."""
    return open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))


def good(cid: str) -> dict:
    """A valid stored customer."""
    return {"_id": cid, "customer_id": cid, **GOOD}


def nested(levels: int, leaf: object = 1) -> dict:
    """A dict nested ``levels`` deep, built without recursion."""
    doc: object = leaf
    for _ in range(levels):
        doc = {"a": doc}
    return doc  # type: ignore[return-value]


def write_around_limits(store, docs: list[dict], monkeypatch) -> None:
    """Store documents the way an app writing to MongoDB directly could (past custscore's own write checks)."""
    with monkeypatch.context() as m:
        m.setattr(limits, "MAX_NESTING", 100_000)
        store.collection(CUSTOMERS).insert_many(docs)
