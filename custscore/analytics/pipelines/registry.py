"""The registry of named pipelines: look one up, build its stages, run it into a DataFrame."""

from __future__ import annotations

import logging
import time

import pandas as pd

from custscore.analytics.pipelines import cohorts, customers, events
from custscore.analytics.pipelines.common import Pipeline, PipelineInfo
from custscore.errors import InputError
from custscore.store.base import Store
from custscore.store.mirror import StatsTable

log = logging.getLogger(__name__)

_REGISTRY: dict[str, Pipeline] = {p.info.name: p for p in (*customers.PIPELINES, *events.PIPELINES, *cohorts.PIPELINES)}


def list_pipelines() -> list[PipelineInfo]:
    """Every named pipeline, sorted by name.

    Returns
    -------
    list of PipelineInfo
        Name, description, collection, supported ``by`` fields, options and columns.
    """
    return [_REGISTRY[name].info for name in sorted(_REGISTRY)]


def get_pipeline(name: str) -> PipelineInfo:
    """The description of the pipeline called ``name``.

    Raises
    ------
    InputError
        If no pipeline has that name; the message lists the valid names.
    """
    return _entry(name).info


def _entry(name: str) -> Pipeline:
    if name not in _REGISTRY:
        raise InputError(f"unknown pipeline {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _check_call(entry: Pipeline, by: str | None, options: dict) -> str | None:
    info = entry.info
    if by is not None and not info.by:
        raise InputError(f"pipeline {info.name!r} does not take a by field (got by={by!r}); leave it out")
    if by is not None and by not in info.by:
        raise InputError(f"pipeline {info.name!r} cannot group by {by!r}; use one of: {', '.join(info.by)}")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        allowed = ", ".join(info.options) or "none"
        raise InputError(f"pipeline {info.name!r} has no option {unknown[0]!r}; its options are: {allowed}")
    return by if by is not None else info.default_by


def build_pipeline(name: str, by: str | None = None, **options) -> list[dict]:
    """The aggregation stages of a named pipeline, e.g. to show them or run them in mongosh.

    Parameters
    ----------
    name : str
        A name from :func:`list_pipelines`.
    by : str, optional
        Grouping field, for pipelines that support one (``PipelineInfo.by``).
    **options
        Pipeline options (``PipelineInfo.options``). ``rfm`` needs ``reference``
        here, since without a store there is no latest event to default to.

    Returns
    -------
    list of dict
        The stages of the pipeline's main aggregation on ``PipelineInfo.collection``
        (``cohort_retention`` also runs :func:`~custscore.analytics.pipelines.cohorts.cohort_size_stages`
        on customers; ``churn_by_group`` is shown with the simulated-truth label).

    Raises
    ------
    InputError
        Unknown name, unsupported ``by`` or option, or a bad option value.
    """
    entry = _entry(name)
    return entry.build(_check_call(entry, by, options), **options)


def run_pipeline(store: Store, name: str, by: str | None = None, **options) -> pd.DataFrame:
    """Run a named pipeline on ``store`` and return its result as a DataFrame.

    Parameters
    ----------
    store : Store
        Any backend; the stages use operators that MongoDB and the embedded
        store (mongomock's engine) both implement.
    name : str
        A name from :func:`list_pipelines`.
    by : str, optional
        Grouping field for pipelines that take one; None uses ``PipelineInfo.default_by``.
    **options
        Pipeline options, e.g. ``limit=5`` for ``top_products`` or
        ``reference=datetime(2026, 6, 30)`` for ``rfm``.

    Returns
    -------
    pandas.DataFrame
        Columns as documented in ``PipelineInfo.columns``; zero rows (same
        columns) when there is nothing to aggregate. Null and missing values are
        treated as MongoDB treats them: left out of means and sums, grouped
        under ``None`` or a ``"missing"`` bucket.

    Raises
    ------
    InputError
        Unknown name (the message lists the valid names), a ``by`` the pipeline
        does not support (the message lists the allowed ones), an unknown option
        or bad option value, or a pipeline the backend refused.
    """
    entry = _entry(name)
    by = _check_call(entry, by, options)
    started = time.perf_counter()
    frame = entry.run(store, by, **options)
    log.info("pipeline %s (by=%s) returned %d rows in %.2fs", name, by, len(frame), time.perf_counter() - started)
    return frame


def stats_tables(store: Store) -> dict[str, StatsTable]:
    """Every named pipeline (default ``by`` and options) as a stats table for the SQL mirror.

    The mirror recomputes ``stats_<name>`` only when a collection in ``PipelineInfo.sources`` changed.
    """
    return {info.name: StatsTable(info.sources, lambda name=info.name: run_pipeline(store, name))
            for info in list_pipelines()}
