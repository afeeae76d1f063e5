"""train --task recommend, recommend, similar; insert a customer, ingest their purchases, score --once, query."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli_foundation import assert_one_red_line, cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_recommend")
    assert cli(home, "simulate", "--customers", "400", "--seed", "2").exit_code == 0
    result = cli(home, "train", "--task", "recommend")
    assert result.exit_code == 0, result.output
    home.joinpath("train.out").write_text(result.output)
    return home


def test_train_prints_the_leaderboard_rating_models_and_registers_the_winner(home):
    out = home.joinpath("train.out").read_text()
    assert "recommend leaderboard" in out and "rating models" in out
    for name in ("popularity", "item-knn", "user-knn", "als", "bpr", "pure-svd", "oracle", "SVD", "KNNBaseline",
                 "BaselineOnly", "global mean"):
        assert f"│ {name}" in out, name
    assert "registered as recommend" in out and "repeatable categories (inferred): beauty, grocery" in out


def test_recommend_and_similar(home):
    result = cli(home, "recommend", "C0000001", "--n", "5")
    assert result.exit_code == 0, result.output
    assert "recommendations for C0000001" in result.output and "because you bought" in result.output
    result = cli(home, "similar", "grocery-0001", "--n", "3")
    assert result.exit_code == 0, result.output
    assert "products similar to grocery-0001" in result.output
    assert_one_red_line(cli(home, "similar", "nope"), "product_id='nope' is not in the recommender's catalogue")
    assert_one_red_line(cli(home, "recommend", "NOBODY"), "customer_id='NOBODY' is not in the store")


def test_insert_a_buyer_then_score_once_and_query_shows_recommendations_with_reasons(home, tmp_path):
    assert cli(home, "score", "--once").exit_code == 0
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"_id": "NEWBUYER", "age": 33, "income": 50000, "channel": "web",
                                "signup_date": "2026-11-01"}))
    assert cli(home, "insert", str(path)).exit_code == 0
    events = tmp_path / "ev.csv"
    events.write_text("customer_id,ts,amount,category,product_id,rating\n"
                      "NEWBUYER,2026-11-20,12.5,grocery,grocery-0003,4.5\nNEWBUYER,2026-11-25,30,books,books-0002,\n")
    assert cli(home, "ingest", "events", str(events)).exit_code == 0
    result = cli(home, "score", "--once")
    assert result.exit_code == 0, result.output
    result = cli(home, "query", '{"_id": "NEWBUYER"}', "--fields", "score.recommendations", "--json")
    assert result.exit_code == 0, result.output
    recs = json.loads(result.output.strip().splitlines()[0])["score.recommendations"]
    assert len(recs) == 10 and all({"product_id", "score", "reason"} <= set(r) for r in recs)
    assert any(r["reason"] == "because you bought books-0002" for r in recs)
    assert "books-0002" not in {r["product_id"] for r in recs}  # bought, and books are not bought twice


def test_predict_and_the_api_path_return_recommendations_with_reasons(home):
    """``predict`` and ``POST /v1/score`` share ``score_given``: a handed-in buyer gets the worker's recommendations."""
    import datetime as dt

    from custscore.config import Settings
    from custscore.scorer.oneoff import score_given
    from custscore.scorer.recommending import load_scoring_models
    from custscore.store import open_store

    settings = Settings.build(home=home, environ={})
    with open_store(settings) as store:
        models = load_scoring_models(store, settings)
        doc = {"customer_id": "GIVEN", "age": 33, "income": 50000, "channel": "web", "signup_date": "2026-11-01"}
        events = [{"customer_id": "GIVEN", "ts": "2026-11-25", "amount": 30, "category": "books",
                   "product_id": "books-0002"}]
        (result,) = score_given(store, models, [doc], events, as_of=dt.datetime(2026, 12, 1))
    recs = result.score["recommendations"]
    assert len(recs) == 10 and any(r["reason"] == "because you bought books-0002" for r in recs)
    assert "books-0002" not in {r["product_id"] for r in recs}
    assert "recommend" in result.score["model_versions"]
