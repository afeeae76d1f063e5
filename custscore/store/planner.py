"""Turn the indexable part of a Mongo filter into SQL that narrows the candidate rows.

The SQL never decides a match on its own unless the filter is exactly an
``_id`` lookup: it returns a superset of the matching rows (rows whose indexed
value is NULL, i.e. missing, an array or an unindexable type, are always
candidates), and mongomock's filter engine then checks every candidate. So a
narrowing rule can only cost speed, never correctness.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import bson

_RANGE_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
UNINDEXABLE = object()


def encode_id(value: Any) -> bytes:
    """The exact, type-preserving key of an ``_id`` value."""
    return bson.encode({"_id": value})


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Naive UTC with millisecond precision, as BSON stores datetimes."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    if value.microsecond % 1000:
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def index_key(value: Any) -> Any:
    """SQL value mirroring a field; ``None`` when not representable (arrays, documents, NaN, booleans).

    Numbers stay numbers; strings, ObjectIds and dates become text with a type
    tag whose order follows MongoDB's order of types (numbers < strings <
    ObjectId < dates), so ``ORDER BY`` on the column sorts like MongoDB does
    and an equality never mixes types. Booleans are left to the filter engine
    (mongomock treats ``False`` as equal to ``0``; NULL keeps us consistent).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str):
        return "3:" + value
    if isinstance(value, dt.datetime):
        return "9:" + to_utc_naive(value).isoformat(timespec="milliseconds")
    if isinstance(value, bson.ObjectId):
        return "7:" + str(value)
    return None


def normalize_filter(spec: Any) -> Any:
    """Copy of a filter with aware datetimes turned into naive UTC (how documents come back)."""
    if isinstance(spec, dict):
        return {k: normalize_filter(v) for k, v in spec.items()}
    if isinstance(spec, list | tuple):
        return [normalize_filter(v) for v in spec]
    if isinstance(spec, dt.datetime) and spec.tzinfo is not None:
        return to_utc_naive(spec)
    return spec


def _id_clause(cond: Any) -> tuple[str, list] | None:
    if not isinstance(cond, dict) or not any(k.startswith("$") for k in cond):
        return "id = ?", [encode_id(cond)]
    if set(cond) == {"$eq"}:
        return "id = ?", [encode_id(cond["$eq"])]
    if set(cond) == {"$in"} and isinstance(cond["$in"], list | tuple):
        values = list(cond["$in"])
        if not values:
            return "0", []
        return f"id IN ({','.join('?' * len(values))})", [encode_id(v) for v in values]
    return None


def _field_clause(column: str, cond: Any) -> tuple[str, list] | None:
    if not isinstance(cond, dict) or not any(k.startswith("$") for k in cond):
        key = index_key(cond)
        return (f"({column} = ? OR {column} IS NULL)", [key]) if key is not None else None
    parts, params = [], []
    for op, arg in cond.items():
        if op == "$eq":
            key = index_key(arg)
            if key is not None:
                parts.append(f"{column} = ?")
                params.append(key)
        elif op == "$in" and isinstance(arg, list | tuple) and arg:
            keys = [index_key(a) for a in arg]
            if all(k is not None for k in keys):
                parts.append(f"{column} IN ({','.join('?' * len(keys))})")
                params.extend(keys)
        elif op == "$ne":  # rows holding exactly this value cannot match; arrays and documents stay candidates
            key = index_key(arg)
            if key is not None:
                parts.append(f"{column} != ?")
                params.append(key)
        elif op in _RANGE_SQL:
            key = index_key(arg)
            if key is not None:
                parts.append(f"{column} {_RANGE_SQL[op]} ?")
                params.append(key)
    if not parts:
        return None
    return f"(({' AND '.join(parts)}) OR {column} IS NULL)", params


def plan(filter: dict | None, indexes: dict[str, str]) -> tuple[str, list, bool]:
    """SQL ``WHERE`` text, its parameters, and whether SQL alone decides the match."""
    if not filter:
        return "1", [], True
    clauses: list[str] = []
    params: list = []
    for key, cond in filter.items():
        if key == "_id":
            clause = _id_clause(cond)
        elif key in indexes:
            clause = _field_clause(indexes[key], cond)
        else:
            clause = None
        if clause is not None:
            clauses.append(clause[0])
            params.extend(clause[1])
    exact = len(filter) == 1 and "_id" in filter and bool(clauses)
    return (" AND ".join(clauses) if clauses else "1"), params, exact
