"""NumPy and pandas values as plain Python, the one conversion every path into the store uses.

One rule for missing values: NaN, NaT and pandas NA become None, so a missing number is stored (BSON, JSON,
SQLite) as null everywhere, compares equal to itself on a replay, and reads back as missing. NumPy scalars
become their Python equivalents, arrays lists, a pandas Timestamp a datetime.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

_AS_IS = frozenset({str, int, bool, type(None), dt.datetime})  # exactly these types are plain already


def plain(value: Any) -> Any:
    """One scalar as plain Python: numpy scalars to Python, NaN/NaT/NA to None, Timestamp to datetime."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is float:
        return None if value != value else value
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    return value


def plain_deep(value: Any) -> Any:
    """:func:`plain` applied through dicts (keys as text), lists, tuples and arrays."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, dict):
        return {str(k): plain_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_deep(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain_deep(v) for v in value.tolist()]
    return plain(value)
