"""The EDA report: sections, embedded PNGs, placeholders for missing model data, clear errors."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re

import pytest
from PIL import Image

from custscore.analytics.report import build_report
from custscore.config import Settings
from custscore.errors import InputError
from custscore.simulator.generate import SimulationConfig
from custscore.simulator.run import run_simulation
from custscore.store import open_store

END = dt.datetime(2026, 6, 30)
NOW = dt.datetime(2026, 7, 1, 12, 0, 0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADINGS = ["Key findings", "Data overview", "Missing values, outliers and preprocessing", "Distributions",
            "Correlations", "Key relationships", "Group statistics", "Segment profiles", "Models",
            "Recommendations", "Demand forecasts", "Scorer health"]
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _store(tmp_path, n: int, seed: int = 3):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    run_simulation(store, SimulationConfig(n, seed=seed, end=END))
    return store


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report on 800 simulated customers, shared by the read-only checks below."""
    tmp = tmp_path_factory.mktemp("report")
    store = _store(tmp, 800)
    result = build_report(store, tmp / "reports" / "20260701T120000", now=NOW)
    yield store, result, result.path.read_text(encoding="utf-8")
    store.close()


@pytest.mark.slow
def test_report_has_every_section_and_findings(report):
    _, result, page = report
    assert result.path.name == "index.html" and result.path.is_file()
    for heading in HEADINGS:
        assert f">{heading}<" in page, heading
    assert "generated 2026-07-01 12:00:00 UTC" in page
    assert any("800 customers" in f for f in result.findings)
    assert any("IQR" in f for f in result.findings)
    assert any("log1p" in f and "income" in f for f in result.findings)
    assert "IQR rule, values more than 1.5 x IQR beyond the quartiles" in page
    assert "income (USD/year, log scale)" not in page  # labels live in the PNGs, not the HTML


def test_every_embedded_image_is_a_valid_png_also_written_beside_it(report):
    _, result, page = report
    uris = DATA_URI.findall(page)
    assert len(uris) == len(result.figures) >= 8
    for encoded in uris:
        data = base64.b64decode(encoded, validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    for path in result.figures:
        assert path.parent == result.path.parent and path.suffix == ".png"
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert {p.stem for p in result.figures} >= {"distributions", "correlations", "missing_values", "outliers",
                                               "income_vs_satisfaction", "recency_vs_churn",
                                               "tickets_vs_satisfaction", "satisfaction_by_group"}


def test_report_is_self_contained(report):
    _, _, page = report
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_empty_model_and_score_sections_name_the_command_that_fills_them(report):
    _, result, page = report
    for title in ("Segment profiles", "Models", "Recommendations", "Demand forecasts", "Scorer health"):
        assert result.sections[title] == "empty"
    assert result.sections["Group statistics"] == "ok"
    assert "No models registered yet: run custscore train to fill this section." in page
    assert "No recommender registered yet: run custscore train --task recommend to fill this section." in page
    assert "No demand forecasts stored yet: run custscore train --task demand to fill this section." in page
    assert "No scores on customers yet: run custscore score" in page
    assert "No segments on customers yet: run custscore train, then run custscore score" in page


def test_no_figures_left_open(report):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_zero_customers_is_a_clear_input_error(tmp_path):
    store = open_store(Settings.build(mongo_uri="memory:", home=tmp_path, environ={}))
    with pytest.raises(InputError, match=r"^no customers yet: run custscore simulate or custscore ingest$"):
        build_report(store, tmp_path / "out")
    assert not (tmp_path / "out" / "index.html").exists()
