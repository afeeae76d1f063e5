"""train / models / promote / predict / explain / score / insert / query / monitor / dead-letters from the CLI."""

from __future__ import annotations

import json

import pytest

from custscore.config import Settings
from custscore.models.registry import list_models
from custscore.store import open_store
from tests.cli.test_cli_foundation import assert_one_red_line, cli

pytestmark = pytest.mark.slow
FAMILIES = ("linear", "tree", "forest", "gboost", "xgboost", "mlp", "voting", "stacking")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_models")
    assert cli(home, "simulate", "--customers", "2500", "--seed", "5").exit_code == 0
    result = cli(home, "train", "--task", "all", "--cv", "2")
    assert result.exit_code == 0, result.output
    home.joinpath("train.out").write_text(result.output)
    return home


def _store(home):
    return open_store(Settings.build(home=home, environ={}))


def test_train_all_prints_three_leaderboards_with_every_family(home):
    out = home.joinpath("train.out").read_text()
    for task in ("churn", "satisfaction", "segment"):
        assert f"{task} leaderboard" in out
    churn = out.split("churn leaderboard")[1].split("leaderboard")[0]
    for family in FAMILIES:
        assert f"│ {family}" in churn, family
    assert "oracle (true parameters)" in out and "oracle (true personas)" in out
    assert "kept class weights" in out or "kept SMOTE" in out
    assert "decision threshold" in out and "feature selection" in out


def test_models_lists_one_production_version_per_task(home):
    result = cli(home, "models")
    assert result.exit_code == 0, result.output
    tasks = {r["task"] for r in list_models(_store(home))}  # churn, first_purchase, satisfaction, segment, ...
    assert {"churn", "first_purchase", "satisfaction", "segment"} <= tasks
    assert result.output.count("yes") == len(tasks)


def test_promote_an_unknown_version_names_the_known_ones(home):
    result = cli(home, "promote", "churn", "19990101-000000-000000")
    assert_one_red_line(result, "churn", "19990101-000000-000000")


def test_predict_a_new_customer_from_options(home):
    result = cli(home, "predict", "--age", "34", "--income", "52000", "--region", "north", "--channel", "web",
                 "--tickets", "2")
    assert result.exit_code == 0, result.output
    assert "churn" in result.output and "satisfaction" in result.output and "segment" in result.output
    assert "raises" in result.output or "lowers" in result.output


def test_predict_refuses_bad_input_in_one_line(home):
    assert_one_red_line(cli(home, "predict", "--age", "500"), "age")


def test_insert_wait_scores_inline_then_explain_and_query(home, tmp_path):
    doc = {"_id": "NEWCOMER", "age": 41, "income": 61000, "region": "west", "channel": "store",
           "support_tickets": 1, "signup_date": "2026-10-01"}
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps(doc) + "\n" + json.dumps({"_id": "BAD", "age": "old"}) + "\n")
    result = cli(home, "insert", str(path), "--wait", "--timeout", "60")
    assert result.exit_code == 1  # one refused
    assert "NEWCOMER" in result.output and "churn" in result.output and "refused" in result.output
    result = cli(home, "explain", "NEWCOMER")
    assert result.exit_code == 0, result.output
    assert "churn" in result.output and "satisfaction" in result.output
    result = cli(home, "query", '{"_id": "NEWCOMER"}', "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[0])
    assert row["score.risk"] == "new"  # no purchase yet: the first_purchase model's population, not churn's


def test_explain_unknown_customer(home):
    assert_one_red_line(cli(home, "explain", "NOPE"), "NOPE", "not in the store")


def test_query_refuses_server_side_javascript(home):
    assert_one_red_line(cli(home, "query", '{"$where": "this.age > 3"}'), "$where")


def test_score_once_then_nothing_new_then_monitor(home):
    result = cli(home, "score", "--once")
    assert result.exit_code == 0, result.output
    with _store(home) as st:
        scored = st["customers"].count({"score": {"$exists": True}})
        total = st["customers"].count({})
        predictions = st["predictions"].count({})
    assert scored == total
    assert cli(home, "score", "--once").exit_code == 0
    with _store(home) as st:
        assert st["predictions"].count({}) == predictions  # a second run writes nothing new
    result = cli(home, "monitor")
    assert result.exit_code in (0, 1), result.output
    assert "psi" in result.output.lower() or "band" in result.output.lower()


def test_tampered_artifact_is_refused_from_the_cli(home):
    with _store(home) as st:
        version = st["models"].find_one({"task": "churn", "aliases": "production"})["version"]
    folder = home / "models" / "churn" / version
    artifact = next(p for p in sorted(folder.iterdir()) if p.is_file() and p.name != "manifest.json")
    original = artifact.read_bytes()
    try:
        artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        assert_one_red_line(cli(home, "predict", "--age", "30"), artifact.name)
    finally:
        artifact.write_bytes(original)


def test_dead_letters_lists_a_document_written_around_validation(home):
    with _store(home) as st:
        st["customers"].insert_one({"_id": "DIRECT", "age": -5, "signup_date": "not a date"})
    assert cli(home, "score", "--once").exit_code == 0
    result = cli(home, "dead-letters")
    assert result.exit_code == 0 and "DIRECT" in result.output, result.output


def test_score_watch_stops_cleanly_on_sigterm(home):
    """--watch runs until SIGTERM, finishes its batch, saves the token and exits 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "CUSTSCORE_MONGO_URI": ""}
    proc = subprocess.Popen([sys.executable, "-m", "custscore", "--home", str(home), "score", "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        from custscore.scorer.worker import worker_alive

        deadline = time.monotonic() + 120
        with _store(home) as st:
            while not worker_alive(st) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)  # polling the heartbeat the worker writes; there is no event to await across processes
            assert worker_alive(st), "worker never reported a heartbeat"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "resume token saved" in out
