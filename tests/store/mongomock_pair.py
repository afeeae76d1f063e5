"""An embedded collection and a mongomock one holding the same documents, for behaviour compared side by side."""

from __future__ import annotations

import mongomock

from custscore.store.embedded import EmbeddedStore


def paired(values: list) -> tuple:
    """``(embedded, mongomock)`` collections with ``{"_id": i, "n": value}`` for each value."""
    coll = EmbeddedStore(None)["t"]
    reference = mongomock.MongoClient().db.t
    for i, value in enumerate(values):
        coll.insert_one({"_id": i, "n": value})
        reference.insert_one({"_id": i, "n": value})
    return coll, reference
