"""The embedded store's change feed: the sequence column read in order, and its resume tokens.

Every write stamps the rows it touches with the next numbers of one store-wide sequence
(sqlite_engine.py), so "what changed after token ``seq:N``" is ``seq > N`` in sequence
order. A document written several times appears once, at its latest version, like a
MongoDB change stream with ``updateLookup``. The contract is in ``Store.changes``.
"""

from __future__ import annotations

import bson

from custscore.errors import ChangeFeedLost, StoreError
from custscore.store.base import Change, ChangeBatch
from custscore.store.boundary import mapped
from custscore.store.sqlite_engine import SQLiteEngine, table_name

TOKEN_PREFIX = "seq:"


def parse_token(token: str | None) -> int:
    """The sequence number a token resumes after (0 for None: the whole history)."""
    if token is None:
        return 0
    if isinstance(token, str) and token.startswith(TOKEN_PREFIX) and token[len(TOKEN_PREFIX):].isdigit():
        return int(token[len(TOKEN_PREFIX):])
    raise StoreError(f"resume token {token!r} was not made by the embedded store; start without a token")


def position(engine: SQLiteEngine) -> str:
    """A token for "now"."""
    return f"{TOKEN_PREFIX}{engine.current_seq()}"


def read_changes(engine: SQLiteEngine, collection: str, after: str | None, limit: int) -> ChangeBatch:
    """Up to ``limit`` documents of ``collection`` written after the token ``after``, and where to resume."""
    start = parse_token(after)
    table = table_name(collection)
    exists = engine.table_exists(collection)
    with mapped(f"change feed of {collection}"), engine.snapshot() as conn:
        # rows and the sequence are read in one snapshot, so "caught up" is never premature
        current = conn.execute("SELECT seq FROM _meta_sequence WHERE id = 1").fetchone()[0]
        rows = []
        if exists:
            rows = conn.execute(
                f'SELECT seq, version, doc FROM "{table}" WHERE seq > ? ORDER BY seq LIMIT ?', (start, int(limit)),
            ).fetchall()
    if start > current:
        raise ChangeFeedLost(
            f"resume token {after!r} is ahead of this store's history (the store was recreated); "
            "rescan from a watermark"
        )
    changes = []
    for seq, version, blob in rows:
        doc = bson.decode(blob)
        changes.append(Change("insert" if version == 1 else "update", doc["_id"], doc, f"{TOKEN_PREFIX}{seq}"))
    full = len(rows) == int(limit)
    token = changes[-1].token if full else f"{TOKEN_PREFIX}{max(current, start)}"
    return ChangeBatch(changes, token)
