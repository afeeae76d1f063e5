"""Drift monitoring: population stability index of recent scored customers against the training reference.

The trainer keeps a :func:`reference_profile` of its training frame (and of its
predictions) in the model manifest. :func:`monitor` reads recent ``predictions``
records, bins their features and predictions exactly as the reference was
binned, and reports PSI = sum((actual - expected) * ln(actual / expected)) per
column with the usual bands: below 0.1 stable, below 0.25 moderate, above that a
shift worth an alert (``exit_code`` 1, for cron).

Like is compared with like: a reference records its population (buyers, new
customers who never bought, or everyone), and only scored customers of that
population are binned against it. A new sign-up is not drift in the buyers'
recency.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from custscore.clock import now
from custscore.models.drift import (  # noqa: F401 - reference_profile, psi, population_of: monitor's public surface
    EVERYONE,
    POPULATION_WORDS,
    band,
    in_population,
    population_of,
    psi,
    psi_row,
    reference_profile,
)
from custscore.models.drift_report import (  # noqa: F401 - drift_report, noise_floor: monitor's public surface
    MIN_RECENT,
    REPORT_COLUMNS,
    SEVERITY,
    drift_report,
    noise_floor,
    psi_table,
    recent_predictions,
    too_few_message,
)
from custscore.store.base import Store
from custscore.store.schema import MONITORING

log = logging.getLogger(__name__)

@dataclass
class MonitorResult:
    """What a monitoring run found: the PSI table, the worst band, the sample size and the stored summary."""

    frame: pd.DataFrame
    worst_band: str  # "stable", "moderate", "shift", or "insufficient" (too few recent customers)
    n_recent: int
    summary_doc: dict = field(default_factory=dict)
    message: str = ""


def monitor(store: Store, reference_by_task: Mapping[str, Mapping], since: Any = None, limit: int = 5000,
            min_recent: int = MIN_RECENT, as_of: Any = None) -> MonitorResult:
    """Drift of every task's features and predictions, stored as a summary in ``monitoring``.

    Parameters
    ----------
    store : Store
        The store with ``predictions``; the summary goes to its ``monitoring`` collection.
    reference_by_task : dict
        Task name -> :func:`reference_profile` (from the production model's manifest).
    since, limit, min_recent
        As in :func:`drift_report`.
    as_of : datetime, optional
        Only scores computed as of this time or earlier (``--as-of``); default all.

    Returns
    -------
    MonitorResult
        A feature shared by several tasks appears once, with its worst PSI. With too
        few recent customers the frame is empty, ``worst_band`` is "insufficient" and
        ``message`` says what to do.
    """
    records = recent_predictions(store, since, limit, as_of)
    n = len(records)
    if n < min_recent:
        frame = pd.DataFrame(columns=["task", *REPORT_COLUMNS])
        worst, message = "insufficient", too_few_message(n, since, min_recent)
    else:
        parts, skipped = _compare_populations(records, reference_by_task, min_recent)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["task", *REPORT_COLUMNS])
        frame = frame[["task", *REPORT_COLUMNS]].sort_values("psi", ascending=False, kind="stable")
        features = frame["kind"] == "feature"
        frame = pd.concat([frame[features].drop_duplicates("name"), frame[~features]])
        frame = frame.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
        worst = max(frame["band"], key=SEVERITY.index) if len(frame) else "stable"
        top = frame.loc[frame["band"] == worst].iloc[0] if len(frame) else None
        message = (f"worst: {top['name']} PSI {top['psi']:.3f} ({worst}) over {n:,} recent customers"
                   if top is not None else f"nothing to compare over {n:,} recent customers")
        message += "".join(f"; {note}" for note in skipped)
    summary = _store_summary(store, frame, worst, n, since, message)
    log.info("monitor: %s", message)
    return MonitorResult(frame, worst, n, summary, message)


def _compare_populations(records: list[dict], reference_by_task: Mapping[str, Mapping],
                         min_recent: int) -> tuple[list[pd.DataFrame], list[str]]:
    """Each task's report over the records of its reference's population; notes for populations too small to compare."""
    features = pd.DataFrame.from_records([r.get("features") or {} for r in records], index=range(len(records)))
    parts, skipped = [], []
    for task, ref in reference_by_task.items():
        population = ref.get("population", EVERYONE)
        mask = in_population(features, population)
        chosen = [r for r, keep in zip(records, mask, strict=True) if keep]
        if len(chosen) < min_recent:
            skipped.append(f"{task} not compared: {len(chosen)} recent {POPULATION_WORDS.get(population, population)} "
                           f"scored, fewer than {min_recent}")
            continue
        parts.append(psi_table(chosen, ref).assign(task=task))
    return parts, skipped


def _store_summary(store: Store, frame: pd.DataFrame, worst: str, n: int, since: Any, message: str) -> dict:
    stamp = now()
    rows = [{"task": r.task, "kind": r.kind, "name": r.name, "psi": round(float(r.psi), 6), "band": r.band}
            for r in frame.itertuples(index=False)]
    doc = {"_id": f"monitor:{stamp.isoformat(timespec='milliseconds')}", "created_at": stamp, "since": since,
           "n_recent": n, "worst_band": worst, "message": message, "rows": rows}
    store.collection(MONITORING).replace_one({"_id": doc["_id"]}, doc, upsert=True)
    return doc


def exit_code(result: MonitorResult) -> int:
    """0 when stable, moderate or too little data; 1 past the 0.25 alert band (for cron)."""
    return 1 if result.worst_band == "shift" else 0


def production_references(store: Store) -> dict[str, dict]:
    """task -> the training reference profile stored with its production model."""
    out = {}
    for doc in store["models"].find({"aliases": "production"}):
        reference = (doc.get("extra") or {}).get("reference")
        if reference:
            out[doc["task"]] = reference
    return out
