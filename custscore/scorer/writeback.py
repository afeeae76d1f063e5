"""What a batch writes: the ``score`` on each customer and an idempotent record in ``predictions``.

Idempotency rests on two keys. A prediction's ``_id`` is
``customer_id|model versions|input_version`` and it is written with
``$setOnInsert`` + upsert, so replaying a batch inserts nothing. The customer's
``score`` carries ``input_version``, ``model_versions`` and ``doc_hash``: a
result equal to the stored one is dropped before writing (a replay leaves
``scored_at`` alone), and the change our own ``score`` write causes in the
feed is recognised as an echo and skipped without scoring.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from custscore.models.input_version import document_hash
from custscore.store.base import DeleteOne, Store, UpdateOne, WriteOp
from custscore.store.plain import plain_deep
from custscore.store.schema import CUSTOMERS, DEAD_LETTERS, PREDICTIONS

SCORE_FIELDS = ("churn_probability", "risk", "satisfaction", "segment", "segment_name", "reasons", "recommendations")


def doc_hash(doc: dict) -> str:
    """Hash of a customer document ignoring ``score`` and bookkeeping: what ``score.doc_hash`` holds.

    The one document hash (:func:`custscore.models.input_version.document_hash`): echo detection compares what the
    scorer wrote with what the features code hashes, so there must never be a second implementation.
    """
    return document_hash(doc)


def versions_key(versions: dict[str, str]) -> str:
    """Model versions as one stable string, e.g. ``churn=v3,satisfaction=v2,segment=v1``."""
    return ",".join(f"{task}={versions[task]}" for task in sorted(versions))


def prediction_id(customer_id: Any, versions: dict[str, str], input_version: str,
                  as_of: dt.datetime | None = None) -> str:
    """The deterministic ``_id`` of a prediction record (one per as-of day when ``as_of`` is given)."""
    key = f"{customer_id}|{versions_key(versions)}|{input_version}"
    return f"{key}|{as_of:%Y-%m-%d}" if as_of is not None else key


def is_echo(doc: dict, versions: dict[str, str]) -> bool:
    """Whether a changed customer only differs from what was scored by its ``score`` (our own write)."""
    score = doc.get("score")
    if not (isinstance(score, dict) and score.get("model_versions") == versions):
        return False
    try:
        return score.get("doc_hash") == doc_hash(doc)
    except (RecursionError, TypeError, ValueError):  # an unhashable document is scored (and dead-lettered) instead
        return False


def same_day(stored: Any, as_of: dt.datetime | None) -> bool:
    """Whether a stored ``score.as_of`` falls on the day of ``as_of`` (always true without ``as_of``)."""
    if as_of is None:
        return True
    return isinstance(stored, dt.datetime) and stored.date() == as_of.date()


def is_replay(stored: Any, input_version: str, versions: dict[str, str], as_of: dt.datetime | None = None) -> bool:
    """Whether the stored ``score`` was computed from the same input by the same models on the same as-of day.

    A new as-of day is a new score even with unchanged inputs: recency and tenure moved on.
    """
    return (
        isinstance(stored, dict)
        and stored.get("input_version") == input_version
        and stored.get("model_versions") == versions
        and same_day(stored.get("as_of"), as_of)
    )


_SCALARS = frozenset((float, int, str, bool, type(None)))


def _flat_plain(item: dict) -> bool:
    """Whether ``item`` has text keys and plain non-NaN scalar values only."""
    scalars = _SCALARS
    return all(type(k) is str and type(v) in scalars and v == v for k, v in item.items())


def _plain_fields(value: Any) -> Any:
    """``plain_deep`` of a score field, a SHAP or a feature dict, without the walk when it is already plain: a
    scalar, ``{name: number}`` or one level of those by task (SHAP, features), or a list of flat records (reasons,
    recommendations) - what the models return."""
    kind = type(value)
    if kind in _SCALARS:
        return value if value == value else plain_deep(value)
    if kind is list:
        if all(type(item) is dict and _flat_plain(item) for item in value):
            return value
        return plain_deep(value)
    if kind is not dict:
        return plain_deep(value)
    scalars = _SCALARS
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return plain_deep(value)
        if kind is dict:
            if not _flat_plain(item):
                return plain_deep(value)
        elif kind not in scalars or item != item:
            return plain_deep(value)
    return value


def _ms(later: dt.datetime, earlier: dt.datetime | None) -> float | None:
    if earlier is None:
        return None
    ms = (later - earlier).total_seconds() * 1000.0
    return round(ms, 1) if math.isfinite(ms) else None


@dataclass
class ScoredRow:
    """One customer's result ready to write: the models' output plus where it came from."""

    customer_id: Any
    result: Any  # CustomerScore
    versions: dict[str, str]
    doc_hash: str
    arrival: dt.datetime | None
    as_of: dt.datetime | None = None  # the clock the features were computed at


def models_key(versions: dict[str, str]) -> str:
    """The model versions as one indexed string (``score.models_key``), e.g. ``"churn=2026…|segment=2026…"``.

    Only a narrowing hint for the start-up scan (feed.stale_items): ``model_versions`` stays the record, so a score
    written before the key existed is read and checked, not rescored.
    """
    return "|".join(f"{task}={version}" for task, version in sorted(versions.items()))


def customer_score(row: ScoredRow, scored_at: dt.datetime) -> dict:
    """The ``score`` sub-document written on the customer."""
    src = row.result.score
    score = {"model_versions": dict(row.versions), "models_key": models_key(row.versions)}
    score.update({k: _plain_fields(src.get(k)) for k in SCORE_FIELDS})
    score.update({
        "scored_at": scored_at,
        "as_of": row.as_of or scored_at,
        "latency_ms": _ms(scored_at, row.arrival),
        "input_version": row.result.input_version,
        "doc_hash": row.doc_hash,
    })
    return score


def prediction_record(row: ScoredRow, score: dict, worker: str | None = None) -> dict:
    """The full record appended to ``predictions`` (complete SHAP vectors and features)."""
    record = {
        "customer_id": row.customer_id,
        "model_versions": dict(row.versions),
        "input_version": row.result.input_version,
        "scored_at": score["scored_at"],
        "as_of": score["as_of"],
        "latency_ms": score["latency_ms"],
        **{k: score[k] for k in SCORE_FIELDS},
        "shap": _plain_fields(row.result.shap),
        "features": _plain_fields(row.result.features),
    }
    if worker is not None:
        record["worker"] = worker
    return record


@dataclass
class Written:
    """What one write unit stored."""

    scored: int = 0
    predictions_inserted: int = 0
    dead_letters: int = 0


def write_batch(
    store: Store,
    rows: list[ScoredRow],
    dead_letter_ops: list[WriteOp],
    scored_at: dt.datetime,
    worker: str | None = None,
    resolved_dead_letters: list[Any] = (),
) -> tuple[Written, dict[Any, dict]]:
    """Write scores, prediction records and dead letters as one unit (one transaction where the store can).

    Parameters
    ----------
    store : Store
        Where to write.
    rows : list of ScoredRow
        Results to write (replays already dropped).
    dead_letter_ops : list of WriteOp
        Upserts into ``dead_letters`` for documents that could not be scored.
    scored_at : datetime
        Naive UTC write time, stored as ``score.scored_at``.
    worker : str, optional
        The writing worker's id, kept on prediction records.
    resolved_dead_letters : list
        ``_id`` values of dead letters to delete because their customer is now scored.

    Returns
    -------
    (Written, dict)
        Counts, and customer id -> the ``score`` written.
    """
    scores = {row.customer_id: customer_score(row, scored_at) for row in rows}
    customer_ops = [UpdateOne({"_id": row.customer_id}, {"$set": {"score": scores[row.customer_id]}}) for row in rows]
    prediction_ops = [
        UpdateOne(
            {"_id": prediction_id(row.customer_id, row.versions, row.result.input_version, row.as_of)},
            {"$setOnInsert": prediction_record(row, scores[row.customer_id], worker)},
            upsert=True,
        )
        for row in rows
    ]
    written = Written()
    with store.transaction():
        if customer_ops:
            written.scored = store.collection(CUSTOMERS).bulk_write(customer_ops).matched
            written.predictions_inserted = len(store.collection(PREDICTIONS).bulk_write(prediction_ops).upserted_ids)
        ops = list(dead_letter_ops) + [DeleteOne({"_id": i}) for i in resolved_dead_letters]
        if ops:
            result = store.collection(DEAD_LETTERS).bulk_write(ops)
            written.dead_letters = len(result.upserted_ids)
    return written, scores
