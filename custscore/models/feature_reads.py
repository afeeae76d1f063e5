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


def read_event_columns(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None,
                       fields: Sequence[str] = EVENT_FIELDS) -> dict[str, list]:
    """``fields`` (and ``customer_id``) of the purchase events of all customers or of ``ids``, up to ``until``, as
    columns (None where an event has no such field).

    For given ids, one ``find_in`` (the worker's read: on the embedded store an SQL ``IN`` on the index decoded
    straight into columns); for all customers, one ``find_columns`` (training's read of every event).
    """
    until_filter = None if until is None else {"ts": {"$lte": until}}
    names = list(dict.fromkeys(("customer_id", *fields)))
    if ids is not None:
        return store[EVENTS].find_in("customer_id", list(ids), names, until_filter)
    return store[EVENTS].find_columns(names, until_filter)


def read_event_docs(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None,
                    fields: Sequence[str] = EVENT_FIELDS) -> list[dict]:
    """The events of :func:`read_event_columns` as documents, each holding every field."""
    columns = read_event_columns(store, ids, until, fields)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def read_events(store: Store, ids: Sequence[str] | None = None, until: dt.datetime | None = None) -> pd.DataFrame:
    """Purchase events (of all customers or of ``ids``), optionally only those up to ``until``."""
    columns = read_event_columns(store, ids, until)
    if not columns["customer_id"]:
        return events_frame([])
    return events_frame(pd.DataFrame(columns, columns=list(EVENT_FIELDS)))


def features_for(store: Store, ids: Sequence[str], as_of: dt.datetime, categories: Sequence[str] = ()) -> pd.DataFrame:
    """Features of the given customers as of ``as_of``, read from the store (the scorer's path)."""
    customers = read_customers(store, ids)
    return customer_features(customers, read_events(store, ids, until=as_of), as_of, categories)
