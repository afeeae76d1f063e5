"""How one write changes one stored document, for the embedded store's short write paths.

A ``$set`` of top-level fields (the scorer's ``score`` write-back, the registry's records) changes a field only
when its BSON changes, as on MongoDB (:func:`set_changes`); an insert-once upsert builds ``{_id, **fields}``
without copying them; everything else goes through mql.py's general update. :func:`touched_fields` names what a
write changed at the top level, which the change feed uses to leave out writes confined to ignored fields
(store/feed.py), as MongoDB's change streams do on the server.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import bson

from custscore.store import mql, planner
from custscore.store.base import UpdateOne, WriteOp

MISSING = object()
_TEXT = {str}
_DECIDED = frozenset((str, int, bool, type(None)))
_EXACT = frozenset((float, dt.datetime))  # unequal may still encode alike: NaN, microseconds below BSON's milliseconds


def by_id_keys(ops: Sequence[WriteOp]) -> list[tuple[bytes, Any]] | None:
    """Each op's ``_id`` and its SQL key when every op is an ``UpdateOne`` of one plain ``_id`` (all distinct)."""
    keys: list[tuple[bytes, Any]] = []
    for op in ops:
        if type(op) is not UpdateOne or not isinstance(op.filter, dict) or len(op.filter) != 1:
            return None
        value = op.filter.get("_id", MISSING)
        if isinstance(value, dict) and set(value) == {"$eq"}:
            value = value["$eq"]
        if value is MISSING or isinstance(value, dict | list | dt.datetime):
            return None
        keys.append((planner.encode_id(value), value))
    return keys if len({key for key, _ in keys}) == len(keys) else None


def top_level(fields: Any) -> bool:
    """Whether an operator's fields are plain top-level names other than ``_id`` (no paths): text, not empty, no
    ``.``, not starting with ``$``. Tested on the names joined (C-level), name by name only when one holds a ``$``."""
    if type(fields) is not dict or not fields or "_id" in fields or set(map(type, fields)) != _TEXT:
        return False
    joined = "".join(fields)
    if "." in joined or not all(fields):
        return False
    return "$" not in joined or all(k[0] != "$" for k in fields)


def insert_once(update: Any) -> bool:
    """Whether an update only sets top-level fields on insert (``$setOnInsert``, the prediction records): on a
    document that exists it changes nothing, so the stored document is not even read."""
    return type(update) is dict and len(update) == 1 and top_level(update.get("$setOnInsert"))


def same_value(a: Any, b: Any) -> bool:
    """Whether two values are stored as the same BSON, which is how MongoDB tells a no-op write: ``1``, ``1.0``
    and ``True`` are equal in Python but three different values to MongoDB (and to mongomock)."""
    if a is b:
        return True
    kind = type(a)
    if kind is type(b):
        if kind in _DECIDED:  # text, whole numbers, booleans: equal exactly when their BSON is
            return a == b
        if kind in _EXACT and a == b:  # equal floats and dates encode alike, except 0.0 and -0.0
            return kind is not float or a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b)
    try:
        return bson.encode({"": a}) == bson.encode({"": b})
    except Exception:  # noqa: BLE001 - a value BSON refuses is never the stored one; the write's encoding says why
        return False


def set_changes(current: dict, fields: dict) -> list[str]:
    """The fields of a top-level ``$set`` whose stored value it changes (compared as BSON, :func:`same_value`)."""
    return [k for k, v in fields.items() if k not in current or not same_value(current[k], v)]


def inserted_fresh(filter: dict, update: dict) -> dict:
    """The document an upsert by ``_id`` inserts: ``{_id, **fields}`` for a ``$set``/``$setOnInsert`` of top-level
    fields (the prediction records' insert-once writes), without copying them; else ``mql``'s general path."""
    if len(update) == 1 and len(filter) == 1 and "_id" in filter and not isinstance(filter["_id"], dict):
        (op, fields), = update.items()
        if op in ("$set", "$setOnInsert") and top_level(fields):
            return {"_id": filter["_id"], **fields}
    return mql.apply_update(mql.upsert_seed(filter), update, is_insert=True)


def touched_fields(current: dict, new: dict) -> str:
    """The top-level fields ``new`` sets, changes or removes compared with ``current``, sorted and comma-joined
    (``"score"``): stored with the row so the feed can tell a write confined to ignored fields.

    Values shared with ``current`` (a top-level ``$set``) are skipped by identity, so only the fields written are
    compared, as BSON (:func:`same_value`)."""
    changed = [k for k in current.keys() | new.keys()
               if (old := current.get(k, MISSING)) is MISSING or (value := new.get(k, MISSING)) is MISSING
               or not same_value(old, value)]
    return ",".join(sorted(changed))
