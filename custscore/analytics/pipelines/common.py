"""What every named pipeline shares: its description, expression helpers and option checks.

Missing values follow MongoDB: ``$avg``/``$sum``/``$min``/``$max`` skip null
and missing values, ``$group`` puts null and missing keys in one ``None``
group, and ``$bucket`` sends them to a ``"missing"`` bucket (see
:func:`bucket_stage`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from custscore.errors import InputError
from custscore.store.planner import to_utc_naive

MISSING = "missing"  # bucket label of null/missing values
OTHER = "other"  # bucket label of values outside every boundary (or not numbers)
_SENTINEL = -1  # $ifNull stand-in for null/missing before $bucket: below every real lower edge
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class PipelineInfo:
    """What a named pipeline computes.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"satisfaction_by_age"``.
    description : str
        One line for ``custscore stats --list``.
    collection : str
        Collection the (main) pipeline runs on.
    by : tuple of str
        Fields accepted by the ``by`` argument; empty when ``by`` is not supported.
    default_by : str or None
        The ``by`` used when none is given.
    options : dict
        Accepted keyword options -> what they mean.
    columns : dict
        Columns of the returned DataFrame -> what they hold (``{by}`` stands for the ``by`` field).
    also_reads : tuple of str
        Collections read besides ``collection`` (``sources`` is both): a change in any of them
        changes the result, so the SQL mirror recomputes its ``stats_<name>`` table.
    """

    name: str
    description: str
    collection: str
    by: tuple[str, ...] = ()
    default_by: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    also_reads: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """Every collection the pipeline reads."""
        return (self.collection, *self.also_reads)

    def column_names(self, by: str | None = None) -> list[str]:
        """Column names of the result for ``by`` (``{by}`` replaced)."""
        return [c.replace("{by}", by or "") for c in self.columns]


@dataclass(frozen=True)
class Pipeline:
    """A registry entry: metadata, the stage builder and the runner."""

    info: PipelineInfo
    build: Callable[..., list[dict]]  # build(by, **options) -> stages
    run: Callable[..., pd.DataFrame]  # run(store, by, **options) -> frame


def is_missing(path: str) -> dict:
    """Expression true when ``path`` is null or missing (MongoDB treats missing != null in $eq)."""
    return {"$eq": [{"$ifNull": [path, None]}, None]}


def count_present(path: str) -> dict:
    """Accumulator counting documents where ``path`` is not null/missing."""
    return {"$sum": {"$cond": [is_missing(path), 0, 1]}}


def month_key(path: str) -> dict:
    """Group key ``{y: year, m: month}`` of a date (the embedded store reads date parts of a path without its expression engine)."""
    return {"y": {"$year": path}, "m": {"$month": path}}


def month_text(key: dict | None) -> str | None:
    """``"YYYY-MM"`` of a :func:`month_key` value (None when the date was null/missing)."""
    if not isinstance(key, dict) or key.get("y") is None or key.get("m") is None:
        return None
    return f"{int(key['y']):04d}-{int(key['m']):02d}"


def count_distinct_with_sets(backend: str) -> bool:
    """Whether to count distinct customers per group with ``$addToSet`` + ``$size`` on this backend.

    The embedded and memory stores hash ``$addToSet`` values and group a
    plain field path several times faster than a ``{customer, key}``
    document, so one ``$group`` with a set per group is the fast form there.
    On MongoDB a set is one array in the group document, which must stay
    under 16 MB (roughly 700k customer ids); two ``$group`` stages,
    ``(key, customer)`` then ``key``, have no such limit, so MongoDB gets those.
    """
    return backend != "mongodb"


@dataclass(frozen=True)
class Buckets:
    """Left-closed numeric buckets ``[edge_i, edge_i+1)`` with an open last bucket."""

    edges: tuple[float, ...]  # ascending lower edges, the first >= 0
    labels: tuple[str, ...]  # one per edge

    def boundaries(self) -> list[float]:
        """``$bucket`` boundaries: the missing sentinel, the edges, +infinity."""
        return [_SENTINEL, *self.edges, math.inf]

    def label(self, lower: object) -> str:
        """Label of the bucket whose ``_id`` (lower boundary) is ``lower``."""
        if lower == _SENTINEL:
            return MISSING
        if lower in self.edges:
            return self.labels[self.edges.index(lower)]
        return OTHER

    def order(self) -> list[str]:
        """All labels in display order."""
        return [*self.labels, MISSING, OTHER]


def bucket_stage(path: str, buckets: Buckets, output: dict) -> dict:
    """A ``$bucket`` stage on ``path`` where null/missing land in the sentinel bucket.

    ``$ifNull`` maps null and missing to -1, which has its own bucket
    ``[-1, first edge)``; MongoDB would otherwise put them in ``default`` with
    out-of-range values (and mongomock cannot compare ``None`` to numbers).
    Non-numeric values go to ``default`` (``"other"``) on MongoDB.
    """
    return {"$bucket": {"groupBy": {"$ifNull": [path, _SENTINEL]}, "boundaries": buckets.boundaries(),
                        "default": OTHER, "output": output}}


def bucket_frame(rows: list[dict], buckets: Buckets, label_column: str, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of a :func:`bucket_stage` as a frame with a label column, in bucket order."""
    records = [{label_column: buckets.label(r["_id"]), **{c: r.get(c) for c in columns[1:]}} for r in rows]
    frame = pd.DataFrame(records, columns=list(columns))
    rank = {label: i for i, label in enumerate(buckets.order())}
    return frame.sort_values(label_column, key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)


def group_frame(rows: list[dict], key_column: str, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of a ``$group`` on one field as a frame sorted by the key, the ``None`` group last."""
    records = [{key_column: r["_id"], **{c: r.get(c) for c in columns[1:]}} for r in rows]
    frame = pd.DataFrame(records, columns=list(columns))
    return frame.sort_values(key_column, na_position="last", kind="stable").reset_index(drop=True)


def check_limit(value: object) -> int:
    """A ``limit`` option: an integer >= 0 (0 = no limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"limit must be an integer >= 0 (0 = all), got {value!r}; pass e.g. limit=10")
    return value


def check_datetime(name: str, value: object) -> dt.datetime:
    """A date option: a datetime or ISO-8601 text, returned as naive UTC."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{name} {value!r} is not a date; use ISO 8601 such as 2026-06-30") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise InputError(f"{name} must be a date, got {value!r}; pass a datetime or ISO text such as 2026-06-30")
    return to_utc_naive(value)
