"""A batch's purchase events, read once and handed to the models per subset of customers.

The worker reads the events of every customer in a micro-batch with one ``find_in_documents`` (on the embedded
store one SQL ``IN`` on the ``customer_id`` index, served from the row cache's own dicts; on MongoDB one ``$in``
find with a projection). The models take event documents for a few customers (their plain path) and a frame for
more (no record parsing), so :meth:`BatchEvents.for_customers` gives either, for any subset (the bisection of a
failing batch scores halves).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import pandas as pd

from custscore.models.few_features import FEW
from custscore.store.base import Store
from custscore.store.schema import EVENTS


class BatchEvents:
    """The events of a batch's customers up to the as-of time, by customer id (text).

    Parameters
    ----------
    documents : list of dict
        The events, each holding the ``fields`` it has; read, never changed (they may be the store's cache).
    fields : sequence of str
        The fields a frame of them has as columns (``customer_id`` first).
    """

    def __init__(self, documents: list[dict], fields: Sequence[str]):
        self.docs = documents
        self.fields = list(dict.fromkeys(("customer_id", *fields)))
        self._rows: dict[str, list[int]] | None = None
        self._customers: set[str] | None = None

    @property
    def customers(self) -> set[str]:
        """The customer ids (as text) the events belong to."""
        if self._customers is None:
            try:  # one C-level pass; text ids are their own keys
                found = set(map(dict.get, self.docs, repeat("customer_id")))
            except TypeError:  # not plain dicts
                found = {None}
            if found and set(map(type, found)) != {str}:
                found = {str(doc.get("customer_id")) for doc in self.docs}
            self._customers = found
        return self._customers

    @property
    def rows(self) -> dict[str, list[int]]:
        """Customer id (text) -> positions of its events, built when a subset is first asked for."""
        if self._rows is None:
            rows: dict[str, list[int]] = {}
            for i, doc in enumerate(self.docs):
                rows.setdefault(str(doc.get("customer_id")), []).append(i)
            self._rows = rows
        return self._rows

    @classmethod
    def read(cls, store: Store, ids: Sequence[str], as_of: dt.datetime, fields: Sequence[str]) -> BatchEvents:
        """One read of ``fields`` (``customer_id`` always) of the events of ``ids`` with ``ts <= as_of``."""
        wanted = list(dict.fromkeys(("customer_id", *fields)))
        docs = store.collection(EVENTS).find_in_documents("customer_id", list(ids), wanted, {"ts": {"$lte": as_of}})
        return cls(docs, wanted)

    def _positions(self, ids: Sequence[str]) -> list[int] | None:
        """Row positions of ``ids``' events, in stored order; None when that is every row."""
        wanted = set(ids)
        if wanted >= self.customers:  # the whole batch, the usual case: no index of positions needed
            return None
        return sorted(i for cid in wanted for i in self.rows.get(cid, ()))

    def documents(self, ids: Sequence[str]) -> list[dict]:
        """The events of ``ids`` as documents (to be read, not changed)."""
        positions = self._positions(ids)
        return list(self.docs) if positions is None else [self.docs[i] for i in positions]

    def for_customers(self, ids: Sequence[str]) -> list[dict] | pd.DataFrame:
        """What the models take for these customers: documents for up to FEW of them, else a frame."""
        docs = self.documents(ids)
        if len(ids) <= FEW:
            return docs
        return pd.DataFrame({f: [d.get(f) for d in docs] for f in self.fields}, columns=self.fields)


def event_fields(models: Any, default: Sequence[str]) -> tuple[str, ...]:
    """The event fields the models read (``models.event_fields`` when they say, else ``default``)."""
    return tuple(getattr(models, "event_fields", default))
