"""What a score was computed from: the document hash (echo detection) and the input version of each customer.

The worker compares ``document_hash`` with the hash it wrote back to tell its own write from a user's change, and
stores ``input_versions`` with every prediction; both must agree on every path, so there is one of each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable

import pandas as pd

from custscore.models.features import events_frame
from custscore.models.few_features import FEW

# purchase_history is a summary of *all* stored events, future ones included; the features read the events
# themselves (up to the as-of date), so it stays out of the input version: a late event changes nothing.
IGNORED_IN_HASH = ("score", "_truth", "updated_at", "ingested_at", "purchase_history")

def _canonical(value):
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


_PLAIN_SCALARS = frozenset((str, int, bool, type(None)))  # exactly these types are their own canonical form


def _canonical_body(doc: dict) -> dict | None:
    """``_canonical`` of the hashed fields of ``doc`` with text keys, built in one pass over the top level (the
    nested values go through ``_canonical``); None when a key is not text (the general path then sorts by ``str``).

    ``json.dumps(..., sort_keys=True)`` of it is the text of ``_canonical`` byte for byte: the same keys, sorted
    the same way, the same values (tests/scorer/test_document_hash.py checks this against the reference definition).
    """
    body = {}
    plain = _PLAIN_SCALARS
    for key, value in doc.items():
        if type(key) is not str:
            return None
        if key in IGNORED_IN_HASH:
            continue
        kind = type(value)
        if kind in plain:
            body[key] = value
        elif kind is float:
            body[key] = value if value == value else "NaN"
        elif kind is dt.datetime:
            body[key] = value.isoformat()
        else:
            body[key] = _canonical(value)
    return body


def document_hash(doc: dict) -> str:
    """Hash of what a customer document says, ignoring the score written back and bookkeeping fields."""
    body = _canonical_body(doc)
    if body is None:
        text = json.dumps(_canonical({k: v for k, v in doc.items() if k not in IGNORED_IN_HASH}), separators=(",", ":"))
    else:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_versions(customers: Iterable[dict], events: pd.DataFrame) -> dict[str, str]:
    """customer id -> version of everything its features read (its document and its events)."""
    if not isinstance(events, pd.DataFrame) and len(customers) <= FEW:
        plain = _plain_event_stats(customers, events)
        if plain is not None:
            return plain
    ev = events_frame(events)
    stats = ev.groupby("customer_id").agg(n=("amount", "size"), last=("ts", "max"), total=("amount", "sum"))
    # one pass over the columns into a dict: a .loc lookup per customer cost more than the groupby
    tails = {cid: f"{int(n)}|{last.isoformat()}|{total:.2f}"
             for cid, n, last, total in zip(stats.index, stats["n"].tolist(), stats["last"], stats["total"].tolist(),
                                            strict=True)}
    out = {}
    for c in customers:
        cid = str(c.get("_id", c.get("customer_id")))
        out[cid] = hashlib.sha256(f"{document_hash(c)}|{tails.get(cid, '0')}".encode()).hexdigest()[:16]
    return out


def _plain_event_stats(customers, events) -> dict[str, str] | None:
    """:func:`input_versions` of a few customers from plain event documents without pandas (None: not plain)."""
    ids = [str(c.get("_id", c.get("customer_id"))) for c in customers]
    stats: dict[str, list] = {cid: [0, None, []] for cid in ids}
    for e in events:
        ts, amount, cid = e.get("ts"), e.get("amount"), e.get("customer_id")
        if type(ts) is not dt.datetime or ts.tzinfo is not None or isinstance(amount, bool) \
                or not isinstance(amount, int | float | type(None)):
            return None
        if amount is None or amount != amount or cid not in stats:
            continue
        row = stats[cid]
        row[0] += 1
        row[1] = ts if row[1] is None or ts > row[1] else row[1]
        row[2].append(float(amount))
    out = {}
    for c, cid in zip(customers, ids, strict=True):
        n, last, amounts = stats[cid]
        tail = "0" if not n else f"{n}|{pd.Timestamp(last).isoformat()}|{math.fsum(amounts):.2f}"
        out[cid] = hashlib.sha256(f"{document_hash(c)}|{tail}".encode()).hexdigest()[:16]
    return out
