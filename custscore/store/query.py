"""Mongo queries on customers, returned as flat tables (``custscore query``).

It lives in the store package because all it does is read: it checks a user's filter,
sort, limit and time budget, runs one ``find`` on ``customers`` and flattens the
documents into columns. It scores nothing and needs nothing from the scorer or the
models (the score columns it shows by default are only field names), so a reader
looking for "how does ``query`` read the database" finds it beside the store it reads.
Errors the engines raise for a filter are mapped by the store (store/boundary.py).
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import pandas as pd

from custscore.errors import InputError, LimitExceeded
from custscore.store import limits, regex_guard
from custscore.store.base import Store, check_no_javascript
from custscore.store.schema import CUSTOMERS

log = logging.getLogger(__name__)

EXAMPLE = '\'{"score.risk": "high"}\''
DEFAULT_FIELDS = (
    "_id",
    "score.risk",
    "score.churn_probability",
    "score.p_alive",
    "score.expected_purchases",
    "score.clv_12m",
    "score.satisfaction",
    "score.segment_name",
    "score.scored_at",
)
HIDDEN_PREFIX = "_truth"  # ground truth of simulated data: shown only when asked for by name
DIRECTIONS = {"1": 1, "-1": -1, "asc": 1, "desc": -1}
DEFAULT_TIMEOUT_S = limits.DEFAULT_QUERY_TIMEOUT_S
MAX_LIMIT = 10_000_000
MAX_FILTER_NESTING = limits.MAX_NESTING
MAX_FILTER_CHARS = 1_000_000


def parse_filter(text: str | None) -> dict:
    """A Mongo filter from JSON text, refusing server-side JavaScript operators.

    Parameters
    ----------
    text : str or None
        JSON object such as ``{"score.risk": "high"}``; empty means every customer.

    Returns
    -------
    dict
        The filter.

    Raises
    ------
    InputError
        The text is not a JSON object (the message names the position and shows an
        example), or it uses ``$where``, ``$function`` or ``$accumulator``.
    """
    if text is None or not text.strip():
        return {}
    if len(text) > MAX_FILTER_CHARS:
        raise LimitExceeded(f"filter is {len(text):,} characters long; filters may have at most {MAX_FILTER_CHARS:,}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"filter is not valid JSON at character {exc.pos + 1} ({exc.msg}); write it like {EXAMPLE}"
        ) from exc
    except RecursionError:
        raise LimitExceeded(_too_deep()) from None
    except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
        raise InputError(f"filter holds a number too long to read ({str(exc).split(':', 1)[0]})") from None
    if not isinstance(spec, dict):
        raise InputError(f"filter must be a JSON object, got {type(spec).__name__}; write it like {EXAMPLE}")
    check_filter(spec)
    return spec


def _too_deep() -> str:
    return (f"filter is nested more than {MAX_FILTER_NESTING} levels deep; flatten it "
            "(one $and or $or can hold many conditions)")


def check_filter(spec: Any) -> None:
    """Refuse a filter nested past :data:`MAX_FILTER_NESTING` levels or using server-side JavaScript."""
    if limits.nesting_depth(spec, MAX_FILTER_NESTING + 1) > MAX_FILTER_NESTING:
        raise LimitExceeded(_too_deep())
    check_no_javascript(spec)


def check_limit(limit: Any, name: str = "--limit") -> int:
    """A row limit between 0 (all) and :data:`MAX_LIMIT`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise LimitExceeded(f"{name} must be 0 (all) up to {MAX_LIMIT:,}, got {limit}")
    return limit


def parse_sort(text: str | None) -> list[tuple[str, int]]:
    """``"score.churn_probability:-1,age"`` -> ``[("score.churn_probability", -1), ("age", 1)]``."""
    spec: list[tuple[str, int]] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, direction = item.strip().partition(":")
        direction = direction.strip().lower() or "1"
        if not name.strip() or direction not in DIRECTIONS:
            raise InputError(
                f"sort item {item.strip()!r} is not FIELD[:1|-1]; write e.g. --sort score.churn_probability:-1,age"
            )
        spec.append((name.strip(), DIRECTIONS[direction]))
    return spec


def filter_fields(spec: Any) -> list[str]:
    """Field paths a filter tests, in order of appearance (operators such as $and/$or looked into)."""
    found: list[str] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key.startswith("$"):
                found.extend(filter_fields(value))
            elif key not in found:
                found.append(key)
    elif isinstance(spec, list):
        for item in spec:
            found.extend(f for f in filter_fields(item) if f not in found)
    return found


def _as_list(fields: str | Sequence[str] | None) -> list[str] | None:
    if fields is None:
        return None
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    items = [f.strip() for f in items if f and f.strip()]
    return items or None


def _columns(fields: list[str] | None, spec: dict, sort: list[tuple[str, int]]) -> list[str]:
    if fields is not None:
        return list(dict.fromkeys(["_id", *fields]))
    extra = [f for f in [*filter_fields(spec), *(s[0] for s in sort)] if not f.startswith(HIDDEN_PREFIX)]
    return list(dict.fromkeys([*DEFAULT_FIELDS, *extra]))


def query_customers(
    store: Store,
    filter: dict | str | None,
    sort: str | Sequence[tuple[str, int]] | None = None,
    limit: int = 20,
    fields: str | Sequence[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> pd.DataFrame:
    """Run a Mongo query on customers and return the matches as a flat table.

    Parameters
    ----------
    store : Store
        Where the customers are.
    filter : dict or str
        A Mongo filter (or its JSON text); JavaScript operators are refused.
    sort : str or list of (field, direction), optional
        E.g. ``"score.churn_probability:-1"``.
    limit : int
        At most this many rows; 0 means all.
    fields : str or list of str, optional
        Dotted paths to show (``_id`` always); by default the score columns plus
        the fields the filter and sort use. ``_truth`` is shown only when named here.
    timeout : float, optional
        Stop with QueryTimeout after this many seconds (default 30; 0 or None: no limit).

    Returns
    -------
    pandas.DataFrame
        One row per customer, dotted column names (a sub-document named in
        ``fields`` is spread over its leaves, e.g. ``purchase_history.orders``).
    """
    columns, docs = _run(store, filter, sort, limit, fields, timeout)
    rows = list(docs)
    log.debug("query matched %d customers (limit %d)", len(rows), limit)
    return _table(rows, columns)


def iter_customer_frames(
    store: Store,
    filter: dict | str | None,
    sort: str | Sequence[tuple[str, int]] | None = None,
    limit: int = 0,
    fields: str | Sequence[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    chunk_rows: int = 1000,
) -> Iterator[pd.DataFrame]:
    """:func:`query_customers` in tables of ``chunk_rows`` rows, for exports (CSV, JSON lines).

    Every table has the columns of the first one, so they can be written one after another.
    The time budget covers the whole export (``timeout=0`` for none).
    """
    columns, docs = _run(store, filter, sort, limit, fields, timeout)
    names: list[str] | None = None
    while chunk := list(islice(docs, max(int(chunk_rows), 1))):
        frame = _table(chunk, columns)
        names = list(frame.columns) if names is None else names
        yield frame.reindex(columns=names)
    if names is None:
        yield _table([], columns)


def _run(
    store: Store, filter: Any, sort: Any, limit: int, fields: Any, timeout: float | None,
) -> tuple[list[str], Iterator[dict]]:
    """Check everything the user gave, then the columns and a lazy iterator over the matching documents."""
    spec = parse_filter(filter) if isinstance(filter, str) or filter is None else filter
    if not isinstance(spec, dict):
        raise InputError(f"filter must be a JSON object, got {type(spec).__name__}; write it like {EXAMPLE}")
    check_filter(spec)
    check_limit(limit)
    budget = limits.check_timeout(timeout)
    order = parse_sort(sort) if isinstance(sort, str) or sort is None else [(str(f), int(d)) for f, d in sort]
    check_sort_fields(store, order)
    columns = _columns(_as_list(fields), spec, order)
    # a path under another requested path would be a projection path collision on MongoDB
    kept = [c for c in columns if c != "_id" and not any(c.startswith(p + ".") for p in columns)]
    projection = dict.fromkeys(kept, 1) or None
    # patterns are checked on every backend; the embedded store evaluates them with a timeout
    guarded = regex_guard.guard_filter(spec, evaluate_here=store.backend != "mongodb")
    return columns, _documents(store, guarded, projection, order, limit, budget)


def _documents(
    store: Store, spec: dict, projection: dict | None, order: list, limit: int, budget: float | None,
) -> Iterator[dict]:
    started = time.monotonic()
    cursor: Iterator[dict] | None = None
    while True:
        try:
            with limits.time_budget(budget, started):
                if cursor is None:
                    cursor = iter(store.collection(CUSTOMERS).find(spec, projection, sort=order or None, limit=limit))
                doc = next(cursor, None)
        except RecursionError:  # the store maps engine errors; only Python's own depth limit is left here
            raise LimitExceeded(_too_deep()) from None
        if doc is None:
            return
        yield doc


def _paths(doc: Any, prefix: str = "") -> list[str]:
    """Every dotted path to a value (not a sub-document) in a document: what a sort can use."""
    out: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            path = f"{prefix}{key}"
            out.extend(_paths(value, path + ".") if isinstance(value, dict) else [path])
    return out


def known_fields(store: Store, sample: int = 50) -> list[str]:
    """Field paths seen on a sample of customers (scored ones first, so ``score.*`` is included), sorted."""
    coll = store.collection(CUSTOMERS)
    docs = list(coll.find({"score": {"$exists": True}}, limit=sample // 2)) + list(coll.find({}, limit=sample // 2))
    return sorted({p for d in docs for p in _paths(d) if not p.startswith(HIDDEN_PREFIX)})


def close_fields(name: str, fields: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` known fields a mistyped ``name`` may mean: paths containing it, then similar spellings."""
    low = name.lower()
    leaf = {f: f.rsplit(".", 1)[-1].lower() for f in fields}
    found = [f for f in fields if low in f.lower()]
    found.sort(key=lambda f: (not leaf[f].startswith(low), len(f)))
    if found:  # the name is part of real fields: those are what was meant
        return found[:n]
    similar = difflib.get_close_matches(low, [f.lower() for f in fields], n=n, cutoff=0.6)
    by_leaf = difflib.get_close_matches(low, list(leaf.values()), n=n, cutoff=0.6)
    found += [f for f in fields if f.lower() in similar or leaf[f] in by_leaf]
    return list(dict.fromkeys(found))[:n]


def check_sort_fields(store: Store, order: Sequence[tuple[str, int]]) -> None:
    """Refuse a sort on a field no customer has (it would return the rows unsorted), naming close matches."""
    coll = store.collection(CUSTOMERS)
    for name, _direction in order:
        if name == "_id" or coll.find_one({name: {"$exists": True}}, {"_id": 1}) is not None:
            continue
        if coll.count({}) == 0:
            return
        matches = close_fields(name, known_fields(store))
        hint = f"did you mean {' or '.join(matches)}?" if matches else "see the fields with --fields or --json"
        raise InputError(f"--sort field {name!r} is on no customer; {hint}")


def _table(docs: list[dict], columns: list[str]) -> pd.DataFrame:
    flat = pd.json_normalize(docs, sep=".") if docs else pd.DataFrame()
    ordered: list[str] = []
    for name in columns:
        leaves = [c for c in flat.columns if c == name or c.startswith(name + ".")]
        ordered.extend(c for c in (leaves or [name]) if c not in ordered)
    return flat.reindex(columns=ordered).reset_index(drop=True)
