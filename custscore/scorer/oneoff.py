"""Score customer documents handed in by a caller (``predict``, the HTTP API), not taken from the change feed.

One code path for ``custscore predict`` and ``POST /v1/score``: validate each
document as ingest would, add the events the caller sent to those already in
the store for the same ids (only those at or before the as-of date), and score
with the loaded production models. Nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from custscore.errors import ValidationError
from custscore.models import feature_reads
from custscore.store.base import Store
from custscore.store.validation import validate_customer, validate_event


def validated_customers(raw_docs: Sequence[Any]) -> list[dict]:
    """Customer documents checked like ingest checks them; ValidationError on the first bad one."""
    clean = []
    for i, raw in enumerate(raw_docs, 1):
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if v is not None}
        doc, problems = validate_customer(raw, i)
        if problems:
            raise ValidationError(str(problems[0]), problems)
        clean.append(doc)
    return clean


def validated_events(raw_events: Sequence[Any]) -> list[dict]:
    """Event documents checked like ingest checks them; ValidationError on the first bad one."""
    clean = []
    for i, raw in enumerate(raw_events, 1):
        doc, problems = validate_event(raw, i)
        if problems:
            raise ValidationError(str(problems[0]), problems)
        clean.append(doc)
    return clean


def score_given(store: Store, models: Any, raw_docs: Sequence[Any], raw_events: Sequence[Any] = (), *,
                as_of: dt.datetime, k: int | None = None) -> list:
    """Score customer documents with their given events plus their stored ones, as of ``as_of``.

    Parameters
    ----------
    store : Store
        Where stored events (and nothing else) are read from.
    models : ProductionModels
        Loaded production models.
    raw_docs, raw_events : sequence of dict
        Customer documents and purchase events as a user would ingest them.
    as_of : datetime
        The clock: features see only events at or before it.
    k : int, optional
        Reasons per task (the models' default when None).

    Returns
    -------
    list of CustomerScore
    """
    return score_validated(store, models, validated_customers(raw_docs), validated_events(raw_events), as_of=as_of,
                           k=k)


def score_validated(store: Store, models: Any, docs: list[dict], events: list[dict], *, as_of: dt.datetime,
                    k: int | None = None) -> list:
    """:func:`score_given` for documents already validated (the API validates per request, scores per batch)."""
    given = [e for e in events if e["ts"] <= as_of]
    # plain documents, not a frame: a few customers take the features path without pandas' fixed costs
    events = given + feature_reads.read_event_docs(store, [str(d["_id"]) for d in docs], until=as_of,
                                                   fields=_event_fields(models))
    options = {} if k is None else {"k": k}
    return models.score_documents(docs, events, as_of, **options)


def score_stored(store: Store, models: Any, ids: Sequence[str], *, as_of: dt.datetime, k: int | None = None) -> list:
    """Score customers already in the store, as of ``as_of`` (``explain``'s path); unknown ids are skipped."""
    docs = feature_reads.read_customers(store, list(ids))
    if not docs:
        return []
    events = feature_reads.read_event_docs(store, [str(d["_id"]) for d in docs], until=as_of,
                                           fields=_event_fields(models))
    options = {} if k is None else {"k": k}
    return models.score_documents(docs, events, as_of, **options)


def _event_fields(models: Any) -> tuple[str, ...]:
    """The event fields the models read: a recommender also needs product ids and ratings."""
    return tuple(getattr(models, "event_fields", feature_reads.EVENT_FIELDS))
