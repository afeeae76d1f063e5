"""A hash-based ``$group`` for the embedded store.

mongomock's ``$group`` sorts every input document by the group key with
Python-level BSON comparisons before grouping (about 10 s for 400k events);
this one hashes keys instead and reads plain ``"$field.path"`` arguments
directly, with the same accumulator semantics (it reuses mongomock's
accumulator functions). Outputs of up to 10,000 groups come in mongomock's
order (sorted by key); larger ones in first-seen order, which MongoDB's
``$group`` allows (its output order is undefined: ``$sort`` after it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from mongomock import aggregate as mm_aggregate
from mongomock import filtering

_MISSING = object()
_DATE_PARTS: dict[str, Callable[[dt.datetime], int]] = {
    "$year": lambda d: d.year,
    "$month": lambda d: d.month,
    "$dayOfMonth": lambda d: d.day,
    "$hour": lambda d: d.hour,
}


def _is_path(expr: Any) -> bool:
    return isinstance(expr, str) and expr.startswith("$") and not expr.startswith("$$")


def _path_getter(path: str) -> Callable[[dict], Any]:
    parts = path.split(".")

    def get(doc: dict) -> Any:
        node: Any = doc
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
        return node

    return get


def _getter(expr: Any, missing_as_none: bool) -> Callable[[dict], Any]:
    """A fast evaluator for plain field paths; mongomock's expression engine for everything else."""
    if _is_path(expr):
        get = _path_getter(expr[1:])
        if missing_as_none:
            return lambda doc: None if (v := get(doc)) is _MISSING else v
        return get
    if isinstance(expr, dict) and len(expr) == 1:
        (op, arg), = expr.items()
        if op in _DATE_PARTS and _is_path(arg):
            get, part, absent = _path_getter(arg[1:]), _DATE_PARTS[op], None if missing_as_none else _MISSING
            return lambda doc: part(v) if isinstance(v := get(doc), dt.datetime) else absent
    if isinstance(expr, dict) and expr and not any(k.startswith("$") for k in expr):
        parts = {k: _getter(v, missing_as_none=True) for k, v in expr.items()}
        return lambda doc: {k: get(doc) for k, get in parts.items()}
    if not isinstance(expr, dict | list | str):
        return lambda doc: expr

    def evaluate(doc: dict) -> Any:
        try:
            return mm_aggregate._parse_expression(expr, doc, ignore_missing_keys=missing_as_none)
        except KeyError:
            return None if missing_as_none else _MISSING

    return evaluate


_SCALARS = (str, int, float, dt.datetime, type(None))


def _hashable(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:  # the common case, first: bool is not in _SCALARS, so True stays apart from 1
        return (kind is str, kind is dt.datetime, kind is type(None), value)
    if isinstance(value, dict):
        return ("d", tuple((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("l", tuple(_hashable(v) for v in value))
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if value is None or isinstance(value, str | dt.datetime):
        return (type(value).__name__, value)
    return ("r", repr(value))


def _accumulate(op: str, values: list) -> Any:
    if op in mm_aggregate._GROUPING_OPERATOR_MAP:
        return mm_aggregate._GROUPING_OPERATOR_MAP[op](values)
    if op == "$push":
        return values
    if op == "$addToSet":
        seen: dict = {}
        for value in values:
            seen.setdefault(_hashable(value), value)
        return list(seen.values())
    raise NotImplementedError(f"{op} is not supported in $group by the embedded store")


def group(docs: list[dict], spec: dict) -> list[dict]:
    """Apply one ``$group`` stage to ``docs``."""
    key_of = _getter(spec["_id"], missing_as_none=True)
    fields = []
    for name, acc in spec.items():
        if name == "_id":
            continue
        if not isinstance(acc, dict) or len(acc) != 1:
            raise NotImplementedError(f"$group field {name!r} needs one accumulator such as {{'$sum': 1}}")
        (op, arg), = acc.items()
        fields.append((name, op, _getter(arg, missing_as_none=False)))
    groups: dict[Any, tuple[Any, dict[str, list]]] = {}
    for doc in docs:
        key = key_of(doc)
        slot = groups.get(marker := _hashable(key))
        if slot is None:
            slot = groups[marker] = (key, {name: [] for name, _, _ in fields})
        for name, _op, get in fields:
            value = get(doc)
            if value is not _MISSING:
                slot[1][name].append(value)
    out = []
    for key, values in groups.values():
        row = {name: _accumulate(op, values[name]) for name, op, _ in fields}
        row["_id"] = key
        out.append(row)
    if len(out) <= 10_000:  # mongomock's order (by key) for small outputs; $group order is undefined anyway
        out.sort(key=lambda row: filtering.BsonComparable(row["_id"]))
    return out
