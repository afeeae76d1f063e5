"""MongoDB query-language semantics the embedded engine needs beyond mongomock's filters.

Update operators, projections, sorting and upsert seeds, on plain dict
documents. Filters and aggregation pipelines themselves are evaluated by
mongomock's engines (see embedded.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import bson
from mongomock import filtering

from custscore.errors import InputError

_MISSING = object()
UPDATE_OPERATORS = ("$set", "$unset", "$inc", "$max", "$min", "$push", "$addToSet", "$setOnInsert")


def _parent(doc: dict, path: str, create: bool) -> tuple[dict | None, str]:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        nxt = node.get(part, _MISSING)
        if nxt is _MISSING or nxt is None:
            if not create:
                return None, parts[-1]
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise InputError(f"cannot update {path!r}: {part!r} holds a {type(nxt).__name__}, not a document")
        node = nxt
    return node, parts[-1]


def get_path(doc: dict, path: str, default: Any = None) -> Any:
    """Value at a dotted path, or ``default`` when any part is missing."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _number(value: Any, path: str, op: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{op} on {path!r} needs a number, got {value!r}")


def _comparable(a: Any, b: Any) -> bool:
    return filtering.bson_compare(lambda x, y: x < y, a, b)


def _copy(doc: dict) -> dict:
    """A deep copy; through BSON's C codec when the document is BSON already (5-10x faster than deepcopy)."""
    try:
        return bson.decode(bson.encode(doc))
    except Exception:  # noqa: BLE001 - not BSON-encodable (yet): Python's copy handles anything
        return copy.deepcopy(doc)


def apply_update(doc: dict, update: dict, is_insert: bool = False) -> dict:
    """Return a new document with Mongo update operators applied to ``doc``."""
    if not update or not all(k.startswith("$") for k in update):
        raise InputError("an update must use operators such as {'$set': {...}}; use replace for whole documents")
    out = _copy(doc)
    for op, fields in update.items():
        if op not in UPDATE_OPERATORS:
            raise InputError(f"update operator {op} is not supported; use one of {', '.join(UPDATE_OPERATORS)}")
        if op == "$setOnInsert" and not is_insert:
            continue
        for path, value in fields.items():
            if path == "_id" or path.startswith("_id."):
                if op in ("$set", "$setOnInsert") and value == out.get("_id"):
                    continue
                raise InputError("the _id of a document cannot be changed")
            parent, key = _parent(out, path, create=op != "$unset")
            if parent is None:
                continue
            current = parent.get(key, _MISSING)
            if op in ("$set", "$setOnInsert"):
                parent[key] = _copy(value) if isinstance(value, dict) else copy.deepcopy(value)
            elif op == "$unset":
                parent.pop(key, None)
            elif op == "$inc":
                _number(value, path, op)
                base = 0 if current is _MISSING or current is None else current
                _number(base, path, op)
                parent[key] = base + value
            elif op in ("$max", "$min"):
                if current is _MISSING or (op == "$max" and _comparable(current, value)) or (
                    op == "$min" and _comparable(value, current)
                ):
                    parent[key] = value
            else:  # $push / $addToSet
                items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
                if current is _MISSING or current is None:
                    current = parent[key] = []
                if not isinstance(current, list):
                    raise InputError(f"{op} on {path!r} needs an array, found {type(current).__name__}")
                for item in items:
                    if op == "$push" or item not in current:
                        current.append(copy.deepcopy(item))
    return out


def upsert_seed(filter: dict) -> dict:
    """The document an upsert starts from: the filter's plain equality fields."""
    seed: dict = {}
    for key, value in (filter or {}).items():
        if key.startswith("$") or (isinstance(value, dict) and any(k.startswith("$") for k in value)):
            continue
        parent, last = _parent(seed, key, create=True)
        parent[last] = copy.deepcopy(value)
    return seed


def project(doc: dict, projection: dict | None) -> dict:
    """Apply an inclusion or exclusion projection (dotted paths allowed)."""
    if not projection:
        return doc
    include_id = bool(projection.get("_id", 1))
    fields = {k: v for k, v in projection.items() if k != "_id"}
    if not fields:
        return doc if include_id else {k: v for k, v in doc.items() if k != "_id"}
    modes = {bool(v) for v in fields.values()}
    if len(modes) > 1:
        raise InputError("a projection cannot mix included and excluded fields (except _id)")
    if modes == {True}:
        out: dict = {"_id": doc["_id"]} if include_id and "_id" in doc else {}
        for path in fields:
            value = get_path(doc, path, _MISSING)
            if value is not _MISSING:
                parent, last = _parent(out, path, create=True)
                parent[last] = value
        return out
    out = copy.deepcopy(doc)
    if not include_id:
        out.pop("_id", None)
    for path in fields:
        parent, last = _parent(out, path, create=False)
        if parent is not None:
            parent.pop(last, None)
    return out


def sort_documents(docs: Iterable[dict], sort: Iterable[tuple[str, int]]) -> list[dict]:
    """Sort with MongoDB's ordering across types (stable, last key applied first)."""
    out = list(docs)
    for path, direction in reversed(list(sort)):
        out.sort(key=lambda d, p=path: filtering.resolve_sort_key(p, d), reverse=direction < 0)
    return out
