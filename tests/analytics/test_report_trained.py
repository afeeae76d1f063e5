"""The report on a really trained store: stored leaderboards with the winner marked, figures titled in words,
the drift table with the monitor's own PSI, and the recommendations and demand sections."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from custscore.analytics.report import build_report
from custscore.cli import app
from custscore.config import Settings
from custscore.models.registry import production_records
from custscore.scorer.health import scorer_health
from custscore.scorer.monitor import drift_report
from custscore.store import open_store

pytestmark = pytest.mark.slow
runner = CliRunner()


def _cli(home, *args):
    result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False, env={"CUSTSCORE_MONGO_URI": ""})
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """800 customers; churn (two families), segment, recommend and demand trained; scored once; one report."""
    home = tmp_path_factory.mktemp("report_trained")
    _cli(home, "simulate", "--customers", "800", "--seed", "5", "--end", "2026-06-30")
    _cli(home, "train", "--task", "churn", "--cv", "2", "--models", "linear,tree")
    _cli(home, "train", "--task", "segment")
    _cli(home, "train", "--task", "recommend")
    _cli(home, "train", "--task", "demand", "--models", "seasonal_naive,global_gbm")
    _cli(home, "score", "--once")
    settings = Settings.build(home=home, environ={})
    store = open_store(settings)
    steps = []
    result = build_report(store, home / "out", settings, progress=lambda what, i, n: steps.append((what, i, n)),
                          scorer_health=scorer_health(store))
    page = result.path.read_text(encoding="utf-8")
    yield store, result, re.sub(r'src="data:[^"]*"', "src", page), steps
    store.close()


def test_each_task_shows_its_stored_leaderboard_with_the_winner_marked(trained):
    store, result, page, _ = trained
    churn = next(r for r in production_records(store) if r["task"] == "churn")
    winner = churn["extra"]["winner"]
    assert result.sections["Model: churn"] == "ok" and result.sections["Model: segment"] == "ok"
    assert f'<tr class="winner">\n      <td>{winner} ★ winner</td>' in page
    for row in churn["extra"]["leaderboard"]:
        assert f"<td>{row['model']}" in page
    assert "<th>val ROC-AUC</th>" in page and "decision tree (assigns new customers) ★ winner" in page
    assert "None" not in re.sub(r"<[^>]+>", "", page).split("Model: churn")[1].split("Drift")[0]
    segment = page.split('id="model-segment"')[1].split("Drift")[0]  # clustering has no test split: it claims none
    assert "segment leaderboard (clustering: silhouette higher is better" in segment
    assert "test is reported" not in segment and "CV" not in segment.split("leaderboard")[1].split("</h3>")[0]


def test_scorer_section_counts_what_the_scorer_wrote(trained):
    """The report reads the scorer's collections through scorer.health, not by itself."""
    store, _, page, _ = trained
    section = re.sub(r"<[^>]+>", " ", page.split('id="scorer"')[1])
    predictions = store.collection("predictions").count()
    assert predictions > 0
    assert re.search(rf"predictions stored\s+{predictions:,}\s", section), section[:400]
    assert re.search(r"dead letters\s+0\s", section) and "Workers" in section


def test_figures_are_titled_in_words_never_by_file_name(trained):
    _, result, page, _ = trained
    for title in ("SHAP summary for churn", "ROC and precision-recall curves for churn",
                  "Confusion matrix for churn at the chosen threshold", "Cumulative gains and lift for churn",
                  "Reliability curve for churn, before and after calibration (test split)",
                  "Elbow and silhouette over the number of segments (k)",
                  "Coverage against accuracy of every recommender"):
        assert f"<h3>{title}" in page, title
    assert not re.search(r"<h3>[^<]*\.png", page)
    assert {"churn_roc_pr", "churn_confusion", "churn_gains", "segment_elbow_silhouette"} <= {p.stem for p in result.figures}


def test_drift_table_holds_the_monitors_psi(trained):
    store, _, page, _ = trained
    churn = next(r for r in production_records(store) if r["task"] == "churn")
    frame = drift_report(store, churn["extra"]["reference"])
    section = page.split("Drift of churn")[1].split("</table>")[0]
    for row in frame.head(5).itertuples():
        value = f"{row.psi:,.3g}" if abs(row.psi) < 1 else f"{row.psi:,.2f}"
        assert re.search(rf"<td>{re.escape(row.name)}</td>\s*<td>{row.kind}</td>\s*<td>{re.escape(value)}</td>", section)


def test_recommend_and_demand_sections_exist_when_those_models_do(trained):
    _, result, page, _ = trained
    assert result.sections["Recommendations"] == "ok" and result.sections["Demand forecasts"] == "ok"
    assert "popularity" in page.split("Recommendation leaderboard")[1].split("</table>")[0]
    assert "oracle" in page.split("Recommendation leaderboard")[1].split("</table>")[0]
    assert "<th>NDCG@10</th>" in page and "<th>coverage</th>" in page
    assert "Popularity of what is recommended, against what is bought" in page
    assert "80% and 95% intervals" in page and "demand_forecasts" in {p.stem for p in result.figures}


def test_progress_reports_every_step_then_the_end(trained):
    *_, steps = trained
    assert steps[0] == ("report: loading customers and events", 0, 12)
    assert steps[-1] == ("report", 12, 12)
    assert [i for _, i, _ in steps] == list(range(13))
