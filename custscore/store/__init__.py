"""Every database touch: backends, collections, indexes, validation, loading.

``open_store(settings)`` returns a :class:`Store` with the same surface whatever
the backend: ``embedded:PATH`` (default), ``memory:`` or ``mongodb://…``.
"""

from __future__ import annotations

from pathlib import Path

from custscore.config import Settings
from custscore.errors import ConfigError
from custscore.store.base import (
    Change,
    ChangeBatch,
    Collection,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    Store,
    UpdateOne,
    WriteResult,
)
from custscore.store.schema import ensure_schema

__all__ = [
    "Change",
    "ChangeBatch",
    "Collection",
    "DeleteOne",
    "InsertOne",
    "ReplaceOne",
    "Store",
    "UpdateOne",
    "WriteResult",
    "ensure_schema",
    "open_store",
]


def open_store(settings: Settings, timeout_ms: int = 5000) -> Store:
    """Open the store named by ``settings.mongo_uri`` and make sure its collections and indexes exist."""
    uri = settings.mongo_uri
    if uri.startswith("mongodb"):
        from custscore.store.mongo import MongoStore

        store: Store = MongoStore(uri, settings.db_name, timeout_ms=timeout_ms)
    elif uri.startswith("memory:"):
        from custscore.store.embedded import EmbeddedStore

        store = EmbeddedStore(None)
    elif uri.startswith("embedded:"):
        from custscore.store.embedded import EmbeddedStore

        path = uri[len("embedded:"):]
        if not path:
            raise ConfigError("embedded URI needs a file path, e.g. embedded:./.custscore/store.sqlite")
        store = EmbeddedStore(Path(path).expanduser())
    else:
        raise ConfigError(f"mongo URI {uri!r} is not understood; use mongodb://…, embedded:PATH or memory:")
    ensure_schema(store)
    return store
