"""MongoDB's own document limits, enforced on every write path of every backend, and the query time budget.

MongoDB refuses a document nested more than 100 levels deep or larger than
16 MB of BSON; the embedded store refuses the same documents, so data that
works on a laptop also works on a server (and no document deep enough to
exhaust Python's recursion can ever be stored by custscore). The checks walk
documents with an explicit stack, never recursion, so they are safe on any
input, however deep.

The time budget is a context variable: :func:`time_budget` sets a deadline,
and the code that does the work (reading rows, evaluating a regex) calls
:func:`check_deadline`, which raises :class:`~custscore.errors.QueryTimeout`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import bson
from bson.errors import InvalidDocument

from custscore.errors import LimitExceeded, QueryTimeout

MAX_NESTING = 100  # MongoDB: "nested no more than 100 levels deep"
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's BSON document size limit (16 MiB)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_QUERY_TIMEOUT_S = 30.0

_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("custscore_deadline", default=None)


@dataclass(frozen=True)
class Unstorable:
    """Why a document cannot be stored: the path of the offending field and the reason."""

    path: str
    value: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CONTAINERS = (dict, list, tuple)
_LEAVES = frozenset({float, bool, type(None), bytes})  # values with nothing inside to check


def nesting_depth(value: Any, stop_after: int = MAX_NESTING + 1) -> int:
    """Levels of objects/arrays in ``value`` (a flat document is 1), counting no further than ``stop_after``.

    Walks one level at a time (a list of the next level's containers), so the cost is one type test per value.
    """
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth >= stop_after:
            return depth
        below: list = []
        for item in level:
            below += [c for c in (item.values() if isinstance(item, dict) else item) if isinstance(c, _CONTAINERS)]
        level = below
    return depth


def _plainly_storable(doc: Any) -> bool:
    """True when :func:`find_unstorable` has nothing to report, proven without building any field path (False:
    there may be a problem, and the slow walk names it). One level at a time, one type test per value."""
    if not isinstance(doc, _CONTAINERS):
        return False
    level, depth, limit = [doc], 1, MAX_NESTING
    while level:
        if depth > limit:
            return False
        below: list = []
        for item in level:
            if isinstance(item, dict):
                for key in item:
                    if type(key) is not str or "\x00" in key or not (key.isascii() or _utf8(key)):
                        return False
                children = item.values()
            else:
                children = item
            for child in children:
                kind = type(child)
                if kind in _LEAVES:
                    continue
                if kind is str:
                    if not (child.isascii() or _utf8(child)):
                        return False
                elif kind is int:
                    if not INT64_MIN <= child <= INT64_MAX:
                        return False
                elif isinstance(child, _CONTAINERS):
                    below.append(child)
                elif isinstance(child, str | int):  # subclasses (IntEnum, ...): let the full walk judge
                    return False
        level = below
        depth += 1
    return True


def _child_path(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _short(path: str) -> str:
    return path if len(path) <= 40 else path[:37] + "..."


def find_unstorable(doc: Any) -> Unstorable | None:
    """The first reason ``doc`` cannot be stored as a MongoDB document, or None.

    Checks nesting (at most :data:`MAX_NESTING` levels), field names (text, no
    NUL byte, valid UTF-8), text values (valid UTF-8: no lone surrogates) and
    integers (8 bytes at most), without recursion. Most documents are proven fine by a quick pass first
    (:func:`_plainly_storable`: ASCII names and text); the walk below builds the paths of the others.
    """
    if _plainly_storable(doc):
        return None
    stack: list[tuple[Any, str, int]] = [(doc, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_NESTING:
                return Unstorable(_short(path) or "(document)", "...", f"is nested more than {MAX_NESTING} levels "
                                  "deep (MongoDB's limit); flatten it")
            items = list(value.items())
            for key, _ in items:
                where = _child_path(path, key if isinstance(key, str) and _utf8(key) else repr(key))
                if not isinstance(key, str):
                    return Unstorable(where, key, "field names must be text")
                if "\x00" in key:
                    return Unstorable(where.replace("\x00", "\\x00"), None, "field names may not contain a NUL byte; rename it")
                if not _utf8(key):
                    return Unstorable(where, None, "field name is not valid UTF-8 (a lone surrogate); rename it")
            stack.extend((child, _child_path(path, key), depth + 1) for key, child in reversed(items))
        elif isinstance(value, list | tuple):
            if depth > MAX_NESTING:
                return Unstorable(_short(path) or "(document)", "...", f"is nested more than {MAX_NESTING} levels "
                                  "deep (MongoDB's limit); flatten it")
            stack.extend((child, _child_path(path, i), depth + 1) for i, child in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            if not _utf8(value):
                return Unstorable(path or "(value)", value.encode("utf-8", "backslashreplace").decode("ascii"),
                                  "is not valid UTF-8 text (a lone surrogate); fix the text")
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            digits = int(value.bit_length() * 0.30103) + 1
            return Unstorable(path or "(value)", f"<{digits}-digit integer>",
                              "is too large an integer (MongoDB stores 8-byte integers); store it as text")
    return None


def min_bytes_past_nesting() -> int:
    """The size of the smallest BSON document nested more than :data:`MAX_NESTING` levels deep.

    5 bytes for the outer document and at least 7 per level inside it (a type byte, an empty key's NUL, an empty
    document's 5 bytes): a smaller encoding needs no walk to know it is within the limit.
    """
    return 5 + 7 * MAX_NESTING


def _may_nest_past_limit(blob: bytes) -> bool:
    """Whether the BSON ``blob`` could be nested more than :data:`MAX_NESTING` levels deep.

    Every level below the top is an embedded document or array, whose element starts with the type byte 0x03 or
    0x04; fewer of those bytes than :data:`MAX_NESTING` anywhere in the encoding (one C count each) prove the limit
    holds, so a customer's score is not walked on every write. False: within the limit; True: walk to know.
    """
    return blob.count(3) + blob.count(4) >= MAX_NESTING


def _check_nesting(doc: Any, what: str) -> None:
    if nesting_depth(doc) > MAX_NESTING:
        raise LimitExceeded(f"{what} cannot be stored: it is nested more than {MAX_NESTING} levels deep "
                            "(MongoDB's limit); flatten it")


def encode_document(doc: dict, what: str = "document") -> bytes:
    """``doc`` as BSON, refused with :class:`LimitExceeded` when MongoDB would refuse it.

    Parameters
    ----------
    doc : dict
        The document to store.
    what : str
        How the message names it, e.g. ``"customer 'C1'"``.

    Returns
    -------
    bytes
        The BSON encoding.

    Raises
    ------
    LimitExceeded
        Nested more than 100 levels, larger than 16 MB, or holding a value BSON cannot encode.
    """
    try:
        blob = bson.encode(doc)  # the C encoder stops a hostile depth itself, with a RecursionError
    except (InvalidDocument, TypeError, OverflowError, UnicodeEncodeError, ValueError, RecursionError) as exc:
        _check_nesting(doc, what)
        problem = find_unstorable(doc)
        reason = str(problem) if problem is not None else str(exc).split("\n", 1)[0]
        raise LimitExceeded(f"{what} cannot be stored: {reason}") from exc
    if len(blob) >= min_bytes_past_nesting() and _may_nest_past_limit(blob):  # else no walk is needed
        _check_nesting(doc, what)
    check_size(blob, what)
    return blob


def check_size(blob: bytes, what: str = "document") -> None:
    """Raise :class:`LimitExceeded` when the BSON ``blob`` is larger than MongoDB's 16 MB."""
    if len(blob) > MAX_DOCUMENT_BYTES:
        raise LimitExceeded(f"{what} cannot be stored: it is {len(blob) / 2**20:.1f} MB of BSON, more than "
                            f"MongoDB's {MAX_DOCUMENT_BYTES // 2**20} MB limit; split it or drop large fields")


def check_document(doc: dict, what: str = "document") -> None:
    """Raise :class:`LimitExceeded` when ``doc`` is past MongoDB's limits (see :func:`encode_document`)."""
    encode_document(doc, what)


# ------------------------------------------------------------------ time budget


def check_timeout(seconds: float | None, name: str = "--timeout") -> float | None:
    """A validated time budget in seconds (None or 0 = no budget)."""
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise LimitExceeded(f"{name} must be a number of seconds, got {seconds!r}; pass e.g. {name} 30") from None
    if value != value or value < 0 or value > 86_400:
        raise LimitExceeded(f"{name} must be between 0 (no limit) and 86400 seconds, got {seconds!r}; pass e.g. {name} 30")
    return value or None


@contextmanager
def time_budget(seconds: float | None, started: float | None = None) -> Iterator[None]:
    """Within the block, :func:`check_deadline` raises QueryTimeout once ``seconds`` have passed (None: no budget).

    ``started`` (a ``time.monotonic()`` value) counts the budget from an earlier moment,
    for work done in several steps (rows of a streamed query).
    """
    if not seconds:
        yield
        return
    start = time.monotonic() if started is None else started
    token = _deadline.set((start + float(seconds), float(seconds)))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left in the current budget (None when there is none)."""
    current = _deadline.get()
    return None if current is None else current[0] - time.monotonic()


def check_deadline() -> None:
    """Raise QueryTimeout when the current time budget has run out."""
    current = _deadline.get()
    if current is not None and time.monotonic() > current[0]:
        raise timeout_error(current[1])


def timeout_error(seconds: float | None = None) -> QueryTimeout:
    """The error for a query stopped after ``seconds`` (default: the current budget)."""
    if seconds is None:
        current = _deadline.get()
        seconds = current[1] if current is not None else 0.0
    return QueryTimeout(f"the query ran longer than {seconds:g} s and was stopped; narrow the filter, "
                        "add --limit, or raise --timeout")
