"""The self-contained HTML report: the data, every production model, recommendations and demand, in one file.

``build_report`` writes ``index.html`` (every figure embedded as a base64 PNG
data URI, inline CSS, no scripts or external links) and each figure as a PNG
beside it. Sections whose data does not exist yet (no registered models, no
scores, no forecasts) say which command fills them. Other packages are read
through their public functions: the registry (:mod:`custscore.models.registry`),
the monitor's drift report, the forecast package's stored forecasts.

Layout: :mod:`~custscore.analytics.page` assembles HTML, the ``*_sections``
modules build the sections, :mod:`~custscore.analytics.profiling` and
:mod:`~custscore.analytics.findings` measure the data and word it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from custscore.analytics import data_sections, eda, profiling
from custscore.analytics.demand_section import demand_section
from custscore.analytics.findings import findings as word_findings
from custscore.analytics.model_sections import task_sections
from custscore.analytics.page import Figures, Section, render_page
from custscore.analytics.recommend_section import recommend_section
from custscore.clock import now as clock_now
from custscore.config import Settings
from custscore.models.registry import production_records
from custscore.store.base import Store

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (what, done, total), as every long library step reports it
STEPS = ("loading customers and events", "profiling", "overview and quality", "distributions and correlations",
         "relationships", "group statistics (pipelines)", "segments", "models", "recommendations", "demand",
         "scorer health", "writing the page")


@dataclass
class ReportResult:
    """What ``build_report`` wrote.

    Attributes
    ----------
    path : Path
        The ``index.html`` file.
    figures : list of Path
        PNG files written beside it.
    findings : list of str
        Short sentences for a terminal summary.
    sections : dict
        Section title -> ``"ok"``, ``"empty"`` (needs a command, see the report) or ``"degraded"``.
    seconds : float
        Wall time of the build.
    """

    path: Path
    figures: list[Path]
    findings: list[str]
    sections: dict[str, str]
    seconds: float = 0.0


def build_report(store: Store, out_dir: Path, settings: Settings | None = None, now: dt.datetime | None = None,
                 as_of: dt.datetime | None = None, progress: Progress | None = None,
                 scorer_health: dict | None = None) -> ReportResult:
    """Write the report to ``out_dir/index.html`` with every figure also as a PNG beside it.

    Parameters
    ----------
    store : Store
        Any backend holding customers (and events, models, scores, forecasts).
    out_dir : Path
        Created if needed; the CLI passes ``$CUSTSCORE_HOME/reports/<timestamp>/``.
    settings : Settings, optional
        Where training filed its figures (``settings.home / "models"``); without it the model
        figures are drawn again from the registry's manifests.
    now : datetime, optional
        Naive UTC time stamped on the report (default: now).
    as_of : datetime, optional
        Measure recency and tenure at this time (``--as-of``) instead of the last event.
    progress : callable, optional
        ``progress("report: <step>", done, total)`` before each step and once at the end.
    scorer_health : dict, optional
        :func:`custscore.scorer.health.scorer_health` of the store: prediction records, dead letters and workers
        in the scorer section (without it the section shows the scores on customers only).

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        When the store holds no customers.
    """
    started = time.perf_counter()

    def step(i: int) -> None:
        if progress:
            progress(f"report: {STEPS[i]}" if i < len(STEPS) else "report", i, len(STEPS))

    step(0)
    ds = eda.load_dataset(store, as_of=as_of)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    step(1)
    prof, corr = profiling.profile(ds), profiling.correlations(ds.customers)
    found = word_findings(ds, prof, corr)
    figs = Figures(out_dir)
    records = production_records(store)
    sections: list[Section] = []
    step(2)
    sections += [data_sections.overview(ds, store), data_sections.quality(ds, prof, figs)]
    step(3)
    sections += [data_sections.distributions(ds, figs), data_sections.correlations(corr, figs)]
    step(4)
    sections.append(data_sections.relationships(ds, figs))
    step(5)
    sections.append(data_sections.groups(store, ds, figs))
    step(6)
    sections.append(data_sections.segments(ds, figs))
    step(7)
    sections += task_sections(store, settings, records, figs)
    step(8)
    sections.append(recommend_section(ds, records, figs))
    step(9)
    sections.append(demand_section(store, figs))
    step(10)
    sections.append(data_sections.scorer(ds, figs, scorer_health))
    step(11)
    path = out_dir / "index.html"
    path.write_text(render_page(sections, found, now or clock_now()), encoding="utf-8")
    seconds = time.perf_counter() - started
    step(len(STEPS))
    log.info("report with %d figures written to %s in %.1fs", len(figs.paths), path, seconds)
    return ReportResult(path, figs.paths, found, {s.title: s.status for s in sections}, seconds)
