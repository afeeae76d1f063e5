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


def test_recommend_reads_purchases_only_up_to_the_as_of_date(home):
    """The as-of clock, not the wall clock: before any purchase there is no 'because you bought' to give."""
    result = cli(home, "recommend", "C0000001", "--n", "5", "--as-of", "2000-01-01")
    assert result.exit_code == 0, result.output
    assert "recommendations for C0000001" in result.output and "because you bought" not in result.output


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
    # the table a user reads: one line per product with its reason, not a column left out for width
    table = cli(home, "query", '{"_id": "NEWBUYER"}', "--fields", "score.recommendations")
    assert table.exit_code == 0, table.output
    lines = [ln for ln in table.output.splitlines() if ": because you bought books-0002" in ln]
    assert lines and "more column" not in table.output and "{'product_id'" not in table.output, table.output


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


def test_your_own_purchases_and_ratings_with_your_own_column_names(tmp_path):
    """No simulator: a shop's own customers and till rows (renamed with --map) train, recommend and explain."""
    import random

    rng = random.Random(5)
    home = tmp_path / "home"
    people = ["id,joined,years,via"] + [f"U{i:03d},2025-0{1 + i % 9}-15,{20 + i % 50},{'web' if i % 2 else 'store'}"
                                        for i in range(80)]
    (tmp_path / "crm.csv").write_text("\n".join(people) + "\n")
    rows = ["cust,when,paid,sku,kind,stars"]
    for i in range(80):
        taste = ["tea-a", "book-a"] if i % 2 else ["tea-b", "book-b"]  # two kinds of customer
        for k in range(8):
            kind = taste[k % 2]
            sku = f"{kind}{rng.randrange(6)}"
            stars = "" if k % 3 == 2 else str(rng.choice([3, 3.5, 4, 4.5, 5]))  # two of three rows rated
            rows.append(f"U{i:03d},2026-{1 + k:02d}-{1 + i % 27:02d},{9.5 + k},{sku},{kind.split('-')[0]},{stars}")
    (tmp_path / "till.csv").write_text("\n".join(rows) + "\n")
    result = cli(home, "ingest", "customers", str(tmp_path / "crm.csv"), "--map", "id=customer_id",
                 "--map", "joined=signup_date", "--map", "years=age", "--map", "via=channel")
    assert result.exit_code == 0, result.output
    result = cli(home, "ingest", "events", str(tmp_path / "till.csv"), "--map", "cust=customer_id", "--map", "when=ts",
                 "--map", "paid=amount", "--map", "sku=product_id", "--map", "kind=category", "--map", "stars=rating")
    assert result.exit_code == 0, result.output
    result = cli(home, "train", "--task", "recommend")
    assert result.exit_code == 0, result.output
    assert "registered as recommend" in result.output and "│ oracle" not in result.output  # no truth, no oracle
    for name in ("item-knn", "user-knn", "SVD", "BaselineOnly", "global mean"):
        assert f"│ {name}" in result.output, name
    assert "repeatable categories (inferred): book, tea" in result.output  # both bought again and again
    result = cli(home, "recommend", "U001", "--n", "3")
    assert result.exit_code == 0, result.output
    assert "recommendations for U001" in result.output
    shown = [ln for ln in result.output.splitlines() if ln.startswith("│ ")]
    assert len(shown) == 3 and all("-a" in ln for ln in shown), result.output  # U001 likes the "a" products
