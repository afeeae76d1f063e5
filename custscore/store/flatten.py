"""Documents as flat SQL rows: nested fields as ``a__b__c`` columns, values SQLite stores faithfully."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from custscore.store.plain import plain

SEP = "__"


def quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def sql_value(value: Any) -> Any:
    """A Python/BSON value as something SQLite stores faithfully (datetimes as ISO text, lists as JSON)."""
    kind = type(value)
    if kind is str or value is None:  # the common cases first: this runs once per field
        return value
    if kind is float:
        return None if value != value else value  # NaN
    if kind is int:
        return value if -(2**63) <= value < 2**63 else float(value)
    if kind is dt.datetime:
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ", "milliseconds" if value.microsecond else "seconds")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=_json_default, sort_keys=isinstance(value, dict))
    if isinstance(value, bytes):
        return value
    converted = plain(value)  # numpy scalars, NaN/NaT/NA, pandas Timestamp
    if converted is not value:
        return sql_value(converted)
    for base in (str, float, int):  # subclasses such as enums
        if isinstance(value, base):
            return sql_value(base(value))
    if isinstance(value, dt.datetime):
        return sql_value(dt.datetime.fromtimestamp(value.timestamp(), dt.UTC) if value.tzinfo else
                         dt.datetime(*value.timetuple()[:6], value.microsecond))
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "to_decimal"):  # bson Decimal128
        return float(value.to_decimal())
    return str(value)  # ObjectId, UUID, Decimal ...


def _json_default(value: Any) -> Any:
    converted = sql_value(value)
    return converted if not isinstance(converted, bytes) else converted.hex()


def sql_type(value: Any) -> str:
    """SQLite column type for a converted value."""
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    return "BLOB" if isinstance(value, bytes) else "TEXT"


def flatten(doc: dict, prefix: str = "", out: dict | None = None) -> dict:
    """Nested fields as ``a__b__c`` keys; lists, SHAP vectors and a document ``_id`` as JSON text."""
    out = {} if out is None else out
    for key, value in doc.items():
        name = prefix + key if type(key) is str else f"{prefix}{key}"
        kind = type(value)
        if kind is str or value is None or (kind is float and value == value):  # fast path, no conversion
            out[name] = value
        elif kind is not dict:
            out[name] = sql_value(value)
        elif value and key != "_id" and "shap" not in name.lower():
            flatten(value, name + SEP, out)
        elif value:
            out[name] = sql_value(value)
    return out
