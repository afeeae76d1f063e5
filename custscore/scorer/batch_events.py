"""A batch's purchase events, read once as columns and handed to the models per subset of customers.

The worker reads the events of every customer in a micro-batch with one ``find_in`` (on the embedded store one
SQL ``IN`` on the ``customer_id`` index, decoded straight into per-field lists; on MongoDB one ``$in`` find with a
projection). The models take event documents for a few customers (their plain path) and a frame for more (no
record parsing), so :meth:`BatchEvents.for_customers` gives either, for any subset (the bisection of a failing
batch scores halves).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from custscore.models.few_features import FEW
from custscore.store.base import Store
from custscore.store.schema import EVENTS


class BatchEvents:
    """The events of a batch's customers up to the as-of time, by customer id (text)."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns
        self.rows: dict[str, list[int]] = {}
        for i, cid in enumerate(columns.get("customer_id", ())):
            self.rows.setdefault(str(cid), []).append(i)
        self._all = sum(len(r) for r in self.rows.values())

    @classmethod
    def read(cls, store: Store, ids: Sequence[str], as_of: dt.datetime, fields: Sequence[str]) -> BatchEvents:
        """One read of ``fields`` (``customer_id`` always) of the events of ``ids`` with ``ts <= as_of``."""
        wanted = list(dict.fromkeys(("customer_id", *fields)))
        return cls(store.collection(EVENTS).find_in("customer_id", list(ids), wanted, {"ts": {"$lte": as_of}}))

    def _positions(self, ids: Sequence[str]) -> list[int] | None:
        """Row positions of ``ids``' events, in stored order; None when that is every row."""
        wanted = set(ids)
        if wanted >= set(self.rows):
            return None
        return sorted(i for cid in wanted for i in self.rows.get(cid, ()))

    def documents(self, ids: Sequence[str]) -> list[dict]:
        """The events of ``ids`` as documents."""
        positions = self._positions(ids)
        names = list(self.columns)
        values = list(self.columns.values())
        if positions is not None:
            values = [[column[i] for i in positions] for column in values]
        return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]

    def for_customers(self, ids: Sequence[str]) -> list[dict] | pd.DataFrame:
        """What the models take for these customers: documents for up to FEW of them, else a frame."""
        if len(ids) <= FEW:
            return self.documents(ids)
        positions = self._positions(ids)
        if positions is None:
            return pd.DataFrame(self.columns, columns=list(self.columns))
        return pd.DataFrame({n: [v[i] for i in positions] for n, v in self.columns.items()}, columns=list(self.columns))


def event_fields(models: Any, default: Sequence[str]) -> tuple[str, ...]:
    """The event fields the models read (``models.event_fields`` when they say, else ``default``)."""
    return tuple(getattr(models, "event_fields", default))
