"""train / models / promote / predict / explain / score / insert / query / monitor / dead-letters from the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from custscore.cli import app
from custscore.config import Settings
from custscore.models.registry import list_models
from custscore.scorer.recommending import scoring_versions as production_versions  # predict serves the recommender too
from custscore.store import open_store
from tests.cli.test_cli_foundation import assert_one_red_line, cli, runner

pytestmark = pytest.mark.slow
FAMILIES = ("linear", "tree", "forest", "gboost", "xgboost", "mlp", "voting", "stacking")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_models")
    assert cli(home, "simulate", "--customers", "1500", "--seed", "5").exit_code == 0
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
    assert "next: custscore models | custscore explain C0000001 | custscore score --once" in out  # a real id
    assert "…" not in out  # no header or cell cut (the columns that fit, the rest named)


def test_models_lists_one_production_version_per_task(home):
    result = cli(home, "models")
    assert result.exit_code == 0, result.output
    records = list_models(_store(home))
    tasks = {r["task"] for r in records if "production" in (r.get("aliases") or [])}  # churn, first_purchase, ...
    assert {"churn", "first_purchase", "satisfaction", "segment"} <= tasks
    assert result.output.count("yes") == len(tasks)
    # demand registers its backtest leaderboard without a production alias (its forecasts are stored instead)
    assert {r["task"] for r in records} - tasks <= {"demand"}


def test_promote_an_unknown_version_names_the_known_ones(home):
    result = cli(home, "promote", "churn", "19990101-000000-000000")
    assert_one_red_line(result, "churn", "19990101-000000-000000")


def test_predict_a_new_customer_from_options(home):
    result = cli(home, "predict", "--age", "34", "--income", "52000", "--region", "north", "--channel", "web",
                 "--tickets", "2")
    assert result.exit_code == 0, result.output
    assert "churn" in result.output and "satisfaction" in result.output and "segment" in result.output
    assert "raises" in result.output or "lowers" in result.output


def test_predict_shows_reasons_for_every_task_and_versions_as_words(home):
    result = cli(home, "predict", "--age", "34", "--income", "52000", "--region", "north", "--tickets", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    tasks = [ln.strip() for ln in lines if ln.startswith("  ") and not ln.startswith("    ")]
    assert len(tasks) >= 2 and "satisfaction" in tasks and "segment" in tasks  # like explain: each task's reasons
    footer = lines[-1]
    versions = production_versions(_store(home))
    assert footer == "models: " + ", ".join(f"{t} {v}" for t, v in sorted(versions.items()))
    assert "{" not in footer and '"' not in footer


def test_predict_out_writes_one_row_per_customer_as_csv_or_json_lines(home, tmp_path):
    docs = tmp_path / "new.jsonl"
    docs.write_text("".join(json.dumps({"customer_id": f"P{i}", "age": 30 + i, "income": 40000 + 1000 * i,
                                        "signup_date": "2026-10-01"}) + "\n" for i in range(3)))
    out = tmp_path / "scores.csv"
    result = cli(home, "predict", str(docs), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote 3 customers to {out} (models ")
    frame = pd.read_csv(out)
    assert list(frame["customer_id"]) == ["P0", "P1", "P2"]
    assert {"risk", "satisfaction", "segment_name", "version_satisfaction", "reasons_satisfaction"} <= set(frame)
    assert frame["reasons_satisfaction"].str.contains("predicted satisfaction").all()
    # recommendations as words a spreadsheet shows, not a Python list of dicts
    assert frame["recommendations"].str.match(r"^[\w-]+: [^;{}]+(; [\w-]+: [^;{}]+)*$").all(), frame["recommendations"][0]
    jsonl = tmp_path / "scores.jsonl"
    assert cli(home, "predict", str(docs), "--out", str(jsonl)).exit_code == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["customer_id"] for r in rows] == ["P0", "P1", "P2"]
    assert set(rows[0]["reasons"]) >= {"satisfaction", "segment"}
    assert set(rows[0]["reasons"]["segment"][0]) == {"feature", "value", "contribution", "sentence"}
    assert rows[0]["model_versions"] == production_versions(_store(home))


def test_predict_takes_the_documents_insert_takes_with_the_id_as__id(home, tmp_path):
    docs = tmp_path / "insertable.jsonl"
    docs.write_text(json.dumps({"_id": "N1", "age": 30, "income": 40000, "signup_date": "2026-11-01"}) + "\n")
    result = cli(home, "predict", str(docs))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("N1  churn ")


def test_predict_out_refuses_an_unknown_suffix_before_scoring(home, tmp_path):
    result = cli(home, "predict", "--age", "30", "--out", str(tmp_path / "scores.txt"))
    assert_one_red_line(result, f"--out '{tmp_path / 'scores.txt'}': unknown suffix '.txt'; use .csv or .jsonl, "
                                "e.g. --out scores.csv")
    assert not (tmp_path / "scores.txt").exists()


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
    bar = next(ln for ln in result.output.splitlines() if ln.startswith("scoring "))
    counts = re.search(r" (\d+)/(\d+) ", bar)  # a bar with counts (then elapsed and ETA), full at the end
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 0, bar
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


@contextlib.contextmanager
def _score_watch(home, *args):
    """``custscore score --watch ARGS`` as a real process (killed if a test leaves it running)."""
    env = {**os.environ, "CUSTSCORE_MONGO_URI": ""}
    proc = subprocess.Popen([sys.executable, "-m", "custscore", "--home", str(home), "score", "--watch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def _wait_for(proc, condition, seconds: float = 180.0) -> bool:
    """Poll ``condition`` while the process runs: what the worker writes is not an event to await across processes."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    return condition()


def _stopped(proc, sig) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    return out


def test_score_watch_stops_cleanly_on_sigterm(home):
    """--watch runs until SIGTERM, finishes its batch, saves the token and exits 0."""
    from custscore.scorer.worker import worker_alive

    with _score_watch(home) as proc, _store(home) as st:
        assert _wait_for(proc, lambda: worker_alive(st)), "worker never reported a heartbeat"
        assert "resume token saved" in _stopped(proc, signal.SIGTERM)


def test_score_watch_in_two_processes_scores_each_customer_once_then_a_new_one_and_stops_on_sigint(home, tmp_path):
    """Two worker processes (one command, one partition each) score every customer once, follow the feed, and stop
    after their batches on Ctrl-C; spawning costs ~10 s of imports and model loads per child, so one test does it."""
    from custscore.scorer.state import alive_workers

    with _store(home) as st:  # 200 customers to score at start-up (all 1,500 would cost the suite ~3 s more)
        ids = [d["_id"] for d in st["customers"].find({}, projection={"_id": 1}, limit=200)]
        st["customers"].update_many({"_id": {"$in": ids}}, {"$unset": {"score": ""}})
        before = st["customers"].count({"score": {"$exists": True}})
    doc = tmp_path / "new.json"
    doc.write_text(json.dumps({"_id": "POOL1", "age": 41, "income": 52000, "signup_date": "2026-10-01"}))
    with _score_watch(home, "--processes", "2") as proc, _store(home) as st:
        assert _wait_for(proc, lambda: len(alive_workers(st)) == 2), "the two worker processes never reported"
        assert cli(home, "insert", str(doc)).exit_code == 0
        assert _wait_for(proc, lambda: (st["customers"].find_one({"_id": "POOL1"}) or {}).get("score")), \
            "the new customer was not scored"

        def settled() -> bool:  # the start-up scan is done: only documents filed as dead letters are unscored
            left = {d["_id"] for d in st["customers"].find({"score": {"$exists": False}}, projection={"_id": 1})}
            return left <= {d.get("doc_id") for d in st["dead_letters"].find({}, projection={"doc_id": 1})}

        assert _wait_for(proc, settled), "the start-up scan did not score every valid customer"
        out = _stopped(proc, signal.SIGINT)
        scored = st["customers"].count({"score": {"$exists": True}})
    assert "in 2 processes; resume tokens saved" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    panel = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines() if ln.count("│") == 3}
    # the partitions' counts add up to each newly scored customer once (the 200 or, when this test runs alone, every
    # customer, then the new one)
    assert panel["scored"].startswith(f"{scored - before:,} (") and scored - before >= 201, panel


def test_score_processes_refuses_a_partition_of_its_own_and_the_in_memory_store(tmp_path):
    assert_one_red_line(cli(tmp_path, "score", "--once", "--processes", "2", "--workers", "2"),
                        "--processes 2 runs every partition here; drop --workers/--worker-index, or run one "
                        "command per partition with --workers N --worker-index I")
    result = runner.invoke(app, ["--home", str(tmp_path), "score", "--once", "--processes", "2"],
                           catch_exceptions=False, env={"CUSTSCORE_MONGO_URI": "memory:"})
    assert_one_red_line(result, "--processes needs a store other processes can open; the in-memory store is "
                                "private to one process")
