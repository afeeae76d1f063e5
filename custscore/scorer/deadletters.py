"""Documents that cannot be scored: checked before scoring, recorded once in ``dead_letters`` (retried by scorer/retry.py).

A customer that reached the database by another path (an app writing to
MongoDB directly) is checked with the same rules as ``ingest``; the fields
custscore computes itself (``purchase_history``, ``updated_at``, ``score``)
are checked for shape instead. A dead letter's ``_id`` is
``customer_id|doc_hash``, so the same bad document is recorded once however
often it is seen; a fixed document gets scored and its dead letters removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from typing import Any

from custscore.errors import CustscoreError
from custscore.scorer.writeback import doc_hash
from custscore.store import limits
from custscore.store.base import Store, UpdateOne
from custscore.store.schema import DEAD_LETTERS
from custscore.store.validation import COMPUTED_FIELDS, Problem, validate_customer

log = logging.getLogger(__name__)

_COUNTS = ("orders", "items")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _history_problem(history: Any) -> str | None:
    """Why a stored ``purchase_history`` cannot feed the models, or None."""
    if history is None:
        return None
    if not isinstance(history, dict):
        return f"purchase_history={_shown(history)}: is a {type(history).__name__}, expected an object"
    for name in (*_COUNTS, "total_spent"):
        value = history.get(name)
        if value is None:
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        if not ok or (name in _COUNTS and float(value) != int(value)):
            kind = "a whole number" if name in _COUNTS else "a number"
            return f"purchase_history.{name}={_shown(value)}: expected {kind} >= 0"
    for name in ("first_purchase", "last_purchase"):
        value = history.get(name)
        if value is not None and not isinstance(value, dt.datetime):
            return f"purchase_history.{name}={_shown(value)}: expected a date"
    categories = history.get("categories", {})
    if categories is not None and (
        not isinstance(categories, dict)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in categories.values())
    ):
        return f"purchase_history.categories={_shown(categories)}: expected category -> order count"
    return None


def reason_of(problems: list[Problem]) -> str:
    """The problems of one document as one line: ``field=value: reason; ...``."""
    return "; ".join(f"{p.field}={_shown(p.value)}: {p.reason}" for p in problems)


def check_customer(raw: dict) -> tuple[dict | None, str | None]:
    """The document to score (values normalised as ``ingest`` does) or why it cannot be scored.

    Parameters
    ----------
    raw : dict
        A customer document as stored.

    Returns
    -------
    (dict or None, str or None)
        ``(doc, None)`` when it can be scored, else ``(None, reason)``.
    """
    try:
        return _check(raw)
    except Exception as exc:  # noqa: BLE001 - one document must never stop the scorer
        log.warning("checking customer %r failed: %s: %s", _safe_id(raw), type(exc).__name__, exc)
        return None, f"the document cannot be checked ({type(exc).__name__}: {_shown(str(exc))})"


def _safe_id(raw: Any) -> Any:
    return raw.get("_id") if isinstance(raw, dict) else None


def _check(raw: dict) -> tuple[dict | None, str | None]:
    if not isinstance(raw, dict):
        return None, f"(document)={_shown(raw)}: is not an object with fields"
    unstorable = limits.find_unstorable(raw)  # first: nothing below may recurse into a 600-level document
    if unstorable is not None:
        return None, f"{unstorable.path}={_shown(unstorable.value)}: {unstorable.reason}"
    user_fields = {k: v for k, v in raw.items() if k not in COMPUTED_FIELDS}
    clean, problems = validate_customer(user_fields, 0, simulated=True, storable=True)  # raw was walked above
    if clean is None:
        return None, reason_of(problems)
    reason = _history_problem(raw.get("purchase_history"))
    if reason is not None:
        return None, reason
    for name in ("updated_at",):
        if raw.get(name) is not None and not isinstance(raw[name], dt.datetime):
            return None, f"{name}={_shown(raw[name])}: expected a date (it is set by custscore; drop it)"
    return {**raw, **clean}, None


def customer_key(raw: dict) -> Any:
    """The id a dead letter is filed under: ``customer_id`` when it is usable text, else the ``_id``."""
    cid = raw.get("customer_id")
    return cid if isinstance(cid, str) and cid.strip() else raw.get("_id")


def letter_hash(raw: dict) -> str:
    """The document hash a dead letter is keyed by; never fails (unhashable documents hash their id and size)."""
    if limits.find_unstorable(raw) is None:
        try:
            return doc_hash(raw)
        except Exception:  # noqa: BLE001 - fall through to the stand-in below
            log.debug("hashing customer %r failed", raw.get("_id"), exc_info=True)
    stand_in = f"{raw.get('_id')!r}|{limits.nesting_depth(raw, 10_000)}|{len(raw)}|{sorted(map(repr, raw))!r}"
    return "x" + hashlib.sha256(stand_in.encode("utf-8", "backslashreplace")).hexdigest()[:15]


def storable_copy(raw: dict) -> dict:
    """``raw`` when it can be stored as it is, else its ``_id`` and a note saying why the rest is left out."""
    problem = limits.find_unstorable(raw)
    if problem is None:
        try:
            size = len(limits.encode_document(raw))
        except CustscoreError as exc:
            note = str(exc)
        else:
            if size <= limits.MAX_DOCUMENT_BYTES * 0.9:  # room for the reason and the record's own fields
                return raw
            note = f"it is {size / 2**20:.1f} MB, too close to the {limits.MAX_DOCUMENT_BYTES / 2**20:g} MB limit"
    else:
        note = str(problem)
    return {"_id": raw.get("_id"), "_not_stored": f"the original cannot be stored ({note}); read it at the source"}


def dead_letter_op(raw: dict, reason: str, hash_: str, now: dt.datetime, worker: str | None = None) -> UpdateOne:
    """An upsert recording ``raw`` once (keyed by customer and document hash)."""
    key = customer_key(raw)
    if not isinstance(key, str | int | float) and limits.find_unstorable({"k": key}) is not None:
        key = repr(key)[:200]
    record = {
        "customer_id": key,
        "doc_id": raw.get("_id"),
        "reason": reason,
        "document": storable_copy(raw),
        "doc_hash": hash_,
        "created_at": now,
        "attempts": 0,
        "worker": worker,
    }
    return UpdateOne({"_id": f"{key}|{hash_}"}, {"$setOnInsert": record}, upsert=True)


def open_dead_letters(store: Store, customer_ids: list[Any]) -> list[Any]:
    """``_id`` of the dead letters filed under any of ``customer_ids``."""
    letters = store.collection(DEAD_LETTERS)
    if not customer_ids or letters.find_one({}, {"_id": 1}) is None:  # none at all: the usual case, one row read
        return []
    found = letters.find({"customer_id": {"$in": list(customer_ids)}}, {"_id": 1})
    return [d["_id"] for d in found]


def list_dead_letters(store: Store, limit: int = 50) -> list[dict]:
    """The newest dead letters first.

    Parameters
    ----------
    store : Store
        The store to read.
    limit : int
        At most this many (0 for all).

    Returns
    -------
    list of dict
        Records with ``customer_id``, ``reason``, ``document`` (the original),
        ``created_at``, ``attempts`` and, after a retry, ``last_retry_at``.
    """
    return list(store.collection(DEAD_LETTERS).find({}, sort=[("created_at", -1)], limit=max(int(limit), 0)))
