"""Validation of incoming customers and events: types, ranges, required fields, safe keys.

Every check names the field, the value and the fix. Values are normalised on
the way in (numeric strings to numbers, NaN/NaT to None, dates to naive UTC
datetimes, numpy scalars to Python) so that a user's CSV and the simulator end
up as the same documents.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from custscore.store import limits
from custscore.store.plain import plain, plain_deep  # noqa: F401 - plain: importable here too
from custscore.store.planner import to_utc_naive

MIN_DATE = dt.datetime(1970, 1, 1)
COMPUTED_FIELDS = ("purchase_history", "score", "updated_at", "ingested_at")
RATING_RANGE = (1.0, 5.0)  # explicit product rating on an event (stars; halves allowed)


@dataclass(frozen=True)
class Problem:
    """One reason a document was refused."""

    index: int
    field: str
    value: Any
    reason: str

    def __str__(self) -> str:
        shown = repr(self.value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return f"row {self.index}: {self.field}={shown}: {self.reason}"


class _Bad(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise _Bad("is true/false, expected a number")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isinf(value):
            raise _Bad("is infinite, expected a finite number")
        return value
    if isinstance(value, str):
        try:
            return float(value.strip()) if any(c in value for c in ".eE") else int(value.strip())
        except ValueError:
            raise _Bad("is not a number") from None
    raise _Bad(f"is a {type(value).__name__}, expected a number")


def as_int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        number = _number(value)
        if isinstance(number, float):
            if not number.is_integer():
                raise _Bad("must be a whole number")
            number = int(number)
        if not lo <= number <= hi:
            raise _Bad(f"is out of range, expected {lo} to {hi}")
        return number

    return check


def as_float(lo: float, hi: float, open_low: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = float(_number(value))
        if number < lo or number > hi or (open_low and number == lo):
            low = f"more than {lo:g}" if open_low else f"{lo:g}"
            raise _Bad(f"is out of range, expected {low} to {hi:g}")
        return number

    return check


def as_text(max_len: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Bad(f"is a {type(value).__name__}, expected text")
        text = str(value).strip()
        if not text:
            raise _Bad("is empty")
        if len(text) > max_len:
            raise _Bad(f"is longer than {max_len} characters")
        return text

    return check


def as_datetime(value: Any) -> dt.datetime:
    """A naive UTC datetime from a datetime, date or ISO-8601 text."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _Bad("is not a date; use ISO 8601 such as 2024-05-31 or 2024-05-31T14:03:00") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise _Bad(f"is a {type(value).__name__}, expected a date")
    value = to_utc_naive(value)
    if value < MIN_DATE or value > dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1):
        raise _Bad("is outside 1970 .. today")
    return value


_TRUE, _FALSE = {"true", "yes", "y", "1", "t"}, {"false", "no", "n", "0", "f", ""}


def as_bool(value: Any) -> bool:
    """True/false from a bool, 0/1 or text such as yes/no (a promotion flag)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad("is not true/false; use true, false, 1, 0, yes or no")


# field -> (required, check)
CUSTOMER_SCHEMA: dict[str, tuple[bool, Callable[[Any], Any]]] = {
    "customer_id": (True, as_text(128)),
    "signup_date": (True, as_datetime),
    "age": (False, as_int(0, 120)),
    "income": (False, as_float(0, 1e9)),
    "region": (False, as_text(64)),
    "channel": (False, as_text(64)),
    "support_tickets": (False, as_int(0, 100_000)),
    "customer_satisfaction": (False, as_int(1, 10)),
}

EVENT_SCHEMA: dict[str, tuple[bool, Callable[[Any], Any]]] = {
    "customer_id": (True, as_text(128)),
    "ts": (True, as_datetime),
    "amount": (True, as_float(0, 1e7)),
    "quantity": (False, as_int(1, 100_000)),
    "category": (False, as_text(64)),
    "product_id": (False, as_text(128)),
    "channel": (False, as_text(64)),
    "event_id": (False, as_text(128)),
    "rating": (False, as_float(*RATING_RANGE)),
    "store_id": (False, as_text(64)),
    "promo": (False, as_bool),
}


def _bad_key(doc: Any, prefix: str = "") -> str | None:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key or not key:
                return f"{prefix}{key}"
            found = _bad_key(value, f"{prefix}{key}.")
            if found:
                return found
    elif isinstance(doc, list):
        for item in doc:
            found = _bad_key(item, prefix)
            if found:
                return found
    return None


_CLEAN_LEAVES = frozenset((str, int, bool, type(None), dt.datetime))  # values plain_deep returns as they are


def _already_clean(doc: dict) -> bool:
    """Whether ``doc`` has no bad field name and nothing for ``plain_deep`` to convert (text keys, plain values, no
    NaN, no tuples), proven in one pass a level at a time; False: maybe not, the full checks below decide.

    A stored customer (the scorer checks every one it scores) is nearly always clean, and this pass costs less than
    the two recursive walks it replaces (``_bad_key``, ``plain_deep``).
    """
    level: list = [doc]
    leaves = _CLEAN_LEAVES
    while level:
        below: list = []
        for item in level:
            if type(item) is dict:
                for key in item:
                    if type(key) is not str or not key or key[0] == "$" or "." in key:
                        return False
                children = item.values()
            else:
                children = item
            for child in children:
                kind = type(child)
                if kind in leaves:
                    continue
                if kind is float:
                    if child != child:
                        return False
                elif kind is dict or kind is list:
                    below.append(child)
                else:
                    return False
        level = below
    return True


def validate(
    raw: Any, index: int, schema: dict, allow: tuple[str, ...] = (), storable: bool = False
) -> tuple[dict | None, list[Problem]]:
    """Normalise one document against ``schema``; return it or the problems found (``storable``: the caller
    has already found nothing unstorable in ``raw`` or a document holding it, so that walk is not repeated)."""
    if not isinstance(raw, dict):
        return None, [Problem(index, "(document)", raw, "is not an object with fields")]
    # before anything recursive: nesting, NUL keys, surrogates, huge ints
    unstorable = None if storable else limits.find_unstorable(raw)
    if unstorable is not None:
        return None, [Problem(index, unstorable.path, unstorable.value, unstorable.reason)]
    if _already_clean(raw):
        doc = dict(raw)  # nested values shared with raw, as plain_deep would have returned them equal
    else:
        bad = _bad_key(raw)
        if bad is not None:
            return None, [Problem(index, bad, None, "field names may not start with '$' or contain '.'; rename it")]
        doc = {k: plain_deep(v) for k, v in raw.items()}
    problems = []
    for name in COMPUTED_FIELDS:
        if name in doc and name not in allow:
            problems.append(Problem(index, name, doc[name], "is computed by custscore; drop this field"))
    for name, (required, check) in schema.items():
        value = doc.get(name)
        if value is None:
            if required:
                problems.append(Problem(index, name, value, f"is required; add it or map a column onto it (--map SOURCE={name})"))
            elif name in doc:
                doc[name] = None
            continue
        try:
            doc[name] = check(value)
        except _Bad as exc:
            problems.append(Problem(index, name, value, exc.reason))
    return (None, problems) if problems else (doc, [])


def validate_customer(raw: Any, index: int = 0, simulated: bool = False, storable: bool = False
                      ) -> tuple[dict | None, list[Problem]]:
    """A customer document ready to store (``_id`` = customer_id), or its problems (``storable``: see
    :func:`validate`)."""
    doc, problems = validate(raw, index, CUSTOMER_SCHEMA, storable=storable)
    if doc is None:
        return None, problems
    if "_truth" in doc and not simulated:
        return None, [Problem(index, "_truth", "...", "is reserved for simulated ground truth; drop this field")]
    if "_id" in doc and doc["_id"] != doc["customer_id"]:
        return None, [Problem(index, "_id", doc["_id"], "must equal customer_id (or be left out)")]
    doc["_id"] = doc["customer_id"]
    return doc, []


def validate_event(raw: Any, index: int = 0) -> tuple[dict | None, list[Problem]]:
    """An event document ready to store, or its problems."""
    doc, problems = validate(raw, index, EVENT_SCHEMA)
    if doc is None:
        return None, problems
    if doc.get("quantity") is None:
        doc["quantity"] = 1
    event_id = doc.pop("event_id", None)
    if event_id is not None:
        doc["_id"] = event_id
    return doc, []
