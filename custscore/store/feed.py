"""The embedded store's change feed: the sequence column read in order, and its resume tokens.

Every write stamps the rows it touches with the next numbers of one store-wide sequence
(sqlite_engine.py), so "what changed after token ``seq:N``" is ``seq > N`` in sequence
order. A document written several times appears once, at its latest version, like a
MongoDB change stream with ``updateLookup``. The contract is in ``Store.changes``.

Ignored fields (the scorer's own ``score`` write-back): an update whose ``touched`` fields all lie under them is
left out, as MongoDB's change stream ``$match`` does on the server, but only when the row's previous version
(``prev_seq``) was at or before the token, i.e. the reader has seen every other change of that document. A score
written on top of a change the reader has not seen carries that change too (the feed keeps one version per
document), so it is returned, and the reader checks its content.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def _ignorable(ignored: frozenset[str], start: int, prev_seq: int | None, touched: str | None) -> bool:
    """Whether a row is an update (an inserted row has no ``prev_seq``) confined to ``ignored`` fields whose
    previous version the reader has read."""
    return prev_seq is not None and prev_seq <= start and bool(touched) and ignored.issuperset(touched.split(","))


def read_changes(engine: SQLiteEngine, collection: str, after: str | None, limit: int,
                 ignore_fields: Sequence[str] = ()) -> ChangeBatch:
    """Up to ``limit`` documents of ``collection`` written after the token ``after``, and where to resume
    (updates confined to top-level ``ignore_fields`` left out, see the module's docstring)."""
    start = parse_token(after)
    table = table_name(collection)
    limit = int(limit)
    ignored = frozenset(f.split(".", 1)[0] for f in ignore_fields)
    exists = engine.table_exists(collection)
    marks = "prev_seq, touched" if exists and engine.has_feed_columns(collection) else "NULL, NULL"
    changes: list[Change] = []
    last = start  # the last row read: left-out rows move the token too
    with mapped(f"change feed of {collection}"), engine.snapshot() as conn:
        # rows and the sequence are read in one snapshot, so "caught up" is never premature
        current = conn.execute("SELECT seq FROM _meta_sequence WHERE id = 1").fetchone()[0]
        while exists and len(changes) < limit:
            asked = limit - len(changes)
            rows = conn.execute(f'SELECT seq, version, {marks}, doc FROM "{table}" WHERE seq > ? ORDER BY seq LIMIT ?',
                                (last, asked)).fetchall()
            for seq, version, prev_seq, touched, blob in rows:
                last = seq
                if ignored and _ignorable(ignored, start, prev_seq, touched):
                    continue
                doc = bson.decode(blob)
                changes.append(Change("insert" if version == 1 else "update", doc["_id"], doc, f"{TOKEN_PREFIX}{seq}"))
            if len(rows) < asked:  # the end of the history
                break
    if start > current:
        raise ChangeFeedLost(
            f"resume token {after!r} is ahead of this store's history (the store was recreated); "
            "rescan from a watermark"
        )
    token = changes[-1].token if changes and len(changes) == limit else f"{TOKEN_PREFIX}{max(current, start)}"
    return ChangeBatch(changes, token)
