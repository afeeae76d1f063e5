"""Reading the features' inputs from the store: customer documents (without their scores) and purchase events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from custscore.models.features import EVENT_FIELDS, customer_features, events_frame
from custscore.store.base import Store
from custscore.store.schema import CUSTOMERS, EVENTS

CUSTOMER_PROJECTION = {"score": 0, "purchase_history": 0}


def read_customers(store: Store, ids: Sequence[str] | None = None, with_truth: bool = False) -> list[dict]:
    """Customer documents (all, or the given ids) without their stored scores."""
    projection = dict(CUSTOMER_PROJECTION)
    if not with_truth:
        projection["_truth"] = 0
    filt = {} if ids is None else {"_id": {"$in": list(ids)}}
    return list(store[CUSTOMERS].find(filt, projection=projection))


def read_event_docs(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None,
                    fields: Sequence[str] = EVENT_FIELDS) -> list[dict]:
    """Purchase event documents (of all customers or of ``ids``) with ``fields`` (those features read), up to ``until``.

    For given ids, one ``find_in`` (the worker's read: on the embedded store an SQL ``IN`` on the index decoded
    straight into columns), each document then holding every field (None where the event has none).
    """
    until_filter = None if until is None else {"ts": {"$lte": until}}
    if ids is not None:
        names = list(dict.fromkeys(("customer_id", *fields)))
        columns = store[EVENTS].find_in("customer_id", list(ids), names, until_filter)
        return [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]
    filt: dict = dict(until_filter or {})
    projection = {k: 1 for k in fields} | {"_id": 0}
    return list(store[EVENTS].find(filt, projection=projection))


def read_events(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None) -> pd.DataFrame:
    """Purchase events (of all customers or of ``ids``), optionally only those up to ``until``."""
    return events_frame(read_event_docs(store, ids, until))


def features_for(store: Store, ids: Sequence[str], as_of: dt.datetime, categories: Sequence[str] = ()) -> pd.DataFrame:
    """Features of the given customers as of ``as_of``, read from the store (the scorer's path)."""
    customers = read_customers(store, ids)
    return customer_features(customers, read_events(store, ids, until=as_of), as_of, categories)
