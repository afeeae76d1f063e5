"""--as-of / CUSTSCORE_AS_OF on the scoring commands, --max-age, and the stale-data warning."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from custscore.cli import app
from custscore.config import Settings
from custscore.store import open_store
from custscore.store.history import event_time_range
from custscore.store.loading import load_events
from custscore.store.schema import CUSTOMERS
from tests.cli.test_cli_foundation import assert_one_red_line, cli

pytestmark = pytest.mark.slow
END = "2025-06-30"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_as_of")
    assert cli(home, "simulate", "--customers", "2500", "--seed", "5", "--end", END).exit_code == 0
    result = cli(home, "train", "--task", "churn", "--models", "linear", "--cv", "2")
    assert result.exit_code == 0, result.output
    return home


def _store(home):
    return open_store(Settings.build(home=home, environ={}))


def _newest(home) -> dt.datetime:
    store = _store(home)
    try:
        return event_time_range(store)[1]
    finally:
        store.close()


def test_scoring_on_the_wall_clock_warns_once_that_the_data_is_stale(home):
    newest = _newest(home)
    gap = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - newest).days
    result = cli(home, "score", "--once", "--max-age", "0")
    assert result.exit_code == 0, result.output
    day = f"{newest:%Y-%m-%d}"
    expected = (f"warning: the data looks stale: the newest event is {day}, {gap:,} days before the as-of date "
                f"{dt.datetime.now(dt.UTC):%Y-%m-%d} (churn horizon 90 days); score as of the data's end with "
                f"--as-of {day} (or CUSTSCORE_AS_OF={day})")
    assert result.output.count("the data looks stale") == 1
    assert expected in result.output.replace("\n", " ")


def test_score_as_of_the_data_end_rescores_every_customer_and_records_the_date(home):
    result = cli(home, "score", "--once", "--as-of", END)
    assert result.exit_code == 0, result.output
    assert "stale" not in result.output.split("scorer")[0]  # no warning before the panel
    assert "as of 2025-06-30" in result.output
    store = _store(home)
    try:
        docs = list(store.collection(CUSTOMERS).find({}, {"score": 1}))
    finally:
        store.close()
    assert {d["score"]["as_of"] for d in docs} == {dt.datetime(2025, 6, 30, 23, 59, 59, 999000)}
    high = sum(d["score"]["risk"] == "high" for d in docs)
    assert high < len(docs) / 2  # on the wall clock every customer looked lost


def test_events_after_the_as_of_date_change_no_explanation(home):
    before = cli(home, "explain", "C0000001", "--as-of", END)
    assert before.exit_code == 0, before.output
    store = _store(home)
    try:
        load_events(store, [{"customer_id": "C0000001", "ts": dt.datetime(2025, 8, 1), "amount": 500.0,
                             "category": "books", "quantity": 3}])
    finally:
        store.close()
    after = cli(home, "explain", "C0000001", "--as-of", END)
    assert after.output == before.output
    assert cli(home, "explain", "C0000001", "--as-of", "2025-08-02").output != before.output


def test_custscore_as_of_from_the_environment_and_bad_values(home):
    runner = CliRunner()
    env = {"CUSTSCORE_MONGO_URI": "", "CUSTSCORE_AS_OF": END}
    ok = runner.invoke(app, ["--home", str(home), "explain", "C0000002"], env=env)
    assert ok.exit_code == 0 and "the data looks stale" not in ok.output
    bad_env = runner.invoke(app, ["--home", str(home), "explain", "C0000002"],
                            env={**env, "CUSTSCORE_AS_OF": "last week"})
    assert_one_red_line(bad_env, "CUSTSCORE_AS_OF 'last week' is not a date; use YYYY-MM-DD")
    assert_one_red_line(cli(home, "score", "--once", "--as-of", "2025-02-30"), "--as-of '2025-02-30' is not a date")
    assert_one_red_line(cli(home, "score", "--once", "--max-age", "soon"), "--max-age 'soon' is not a duration")
    assert_one_red_line(cli(home, "report", "--as-of", "2025-01-01"), "--as-of 2025-01-01 is before the newest event")


def test_with_the_real_churn_model_a_customer_going_quiet_gets_riskier(home):
    from custscore.clock import parse_date
    from custscore.models import feature_reads
    from custscore.models.predict import load_production
    from custscore.scorer.batch import score_customers

    end = parse_date(END, end_of_day=True)
    store = _store(home)
    try:
        models = load_production(store, Settings.build(home=home, environ={}))
        ids = [d["_id"] for d in store.collection(CUSTOMERS).find({}, {"_id": 1})]
        X = feature_reads.features_for(store, ids, end)
        regulars = X[(X["recency_days"] < 10) & (X["orders_90d"] >= 3)].index[1:21].tolist()
        assert len(regulars) == 20
        score_customers(store, models, regulars, as_of=end)
        before = {d["_id"]: d["score"] for d in store.collection(CUSTOMERS).find({"_id": {"$in": regulars}})}
        later = end + dt.timedelta(days=120)  # 120 days without a purchase
        outcome = score_customers(store, models, regulars, as_of=later)
        after = {d["_id"]: d["score"] for d in store.collection(CUSTOMERS).find({"_id": {"$in": regulars}})}
    finally:
        store.close()
    assert sorted(outcome.scored) == sorted(regulars)  # a new as-of day: written, not a replay
    assert all(after[c]["churn_probability"] > before[c]["churn_probability"] for c in regulars)
    assert sum(after[c]["risk"] == "high" for c in regulars) > sum(before[c]["risk"] == "high" for c in regulars)
    assert all(after[c]["as_of"] == later for c in regulars)
