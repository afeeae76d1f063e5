"""`custscore serve` as a real uvicorn process on 127.0.0.1, driven with httpx."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from custscore.clock import parse_date
from custscore.config import Settings
from custscore.models.predict import load_production
from custscore.scorer.oneoff import score_given
from custscore.store import open_store
from tests.api.serve_process import start_serve, trained_home
from tests.cli.test_cli_foundation import cli

pytestmark = pytest.mark.slow
AS_OF = "2026-11-30"
CUSTOMER = {"customer_id": "N1", "age": 30, "income": 40000, "region": "north", "channel": "web",
            "signup_date": "2026-01-05"}
EVENTS = [{"customer_id": "N1", "ts": "2026-06-01", "amount": 30.0, "category": "grocery"},
          {"customer_id": "N1", "ts": "2026-09-12", "amount": 55.0, "category": "electronics"}]
NO_KEY = ("missing or invalid API key; send `Authorization: Bearer KEY` "
          "(create one with `custscore apikey create NAME`)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve")
    key = trained_home(home, 600, 3, "linear,tree")
    proc, base = start_serve(home, "--max-batch", "50")
    try:
        yield home, base, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_health_is_open_and_scoring_needs_a_key(server):
    _, base, _ = server
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    response = httpx.post(f"{base}/v1/score", json=CUSTOMER)
    assert response.status_code == 401
    assert response.json() == {"error": NO_KEY}
    assert httpx.post(f"{base}/v1/score", json=CUSTOMER, headers=_auth("cs_not-a-key")).status_code == 401


def test_serve_gives_the_same_scores_as_predict(server):
    home, base, key = server
    response = httpx.post(f"{base}/v1/score", json={"customers": [CUSTOMER], "events": EVENTS, "as_of": AS_OF},
                          headers=_auth(key), timeout=60)
    assert response.status_code == 200, response.text
    served = response.json()["scores"][0]
    store = open_store(Settings.build(home=home, environ={}))
    models = load_production(store, Settings.build(home=home, environ={}))
    local = score_given(store, models, [CUSTOMER], EVENTS, as_of=parse_date(AS_OF, end_of_day=True))[0]
    assert served["churn_probability"] == local.score["churn_probability"]
    assert served["risk"] == local.score["risk"]
    assert [r["sentence"] for r in served["reasons"]] == [r["sentence"] for r in local.score["reasons"]]


def test_concurrent_requests_batched_together_get_the_scores_each_would_get_alone(server):
    from concurrent.futures import ThreadPoolExecutor

    home, base, key = server
    bodies = [{"customers": [{**CUSTOMER, "customer_id": f"N{i}", "age": 20 + 5 * i}],
               "events": [{**e, "customer_id": f"N{i}", "amount": e["amount"] * (i + 1)} for e in EVENTS[: 1 + i % 2]],
               "as_of": AS_OF} for i in range(8)]
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda b: client.post(f"{base}/v1/score", json=b, headers=_auth(key)), bodies))
    settings = Settings.build(home=home, environ={})
    store = open_store(settings)
    models = load_production(store, settings)
    for body, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        served = response.json()["scores"]
        assert [s["customer_id"] for s in served] == [body["customers"][0]["customer_id"]]
        local = score_given(store, models, body["customers"], body["events"], as_of=parse_date(AS_OF, end_of_day=True))
        assert served[0]["churn_probability"] == local[0].score["churn_probability"]
        assert served[0]["reasons"] == local[0].score["reasons"]


def test_explain_a_stored_customer_and_read_models(server):
    _, base, key = server
    response = httpx.post(f"{base}/v1/explain", json={"customer_id": "C0000001", "top": 2}, headers=_auth(key),
                          timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["scores"][0]["reasons_by_task"]["churn"]) == 2 and "churn" in body["units"]
    missing = httpx.post(f"{base}/v1/explain", json={"customer_id": "NOPE"}, headers=_auth(key))
    assert missing.status_code == 404 and missing.json() == {"error": "customer 'NOPE' is not in the store"}
    models = httpx.get(f"{base}/v1/models", headers=_auth(key)).json()
    assert models["loaded"] == models["production"] and "churn" in models["loaded"]


def test_limits_and_bad_bodies_are_json_errors(server):
    _, base, key = server
    too_many = httpx.post(f"{base}/v1/score", json={"customers": [CUSTOMER] * 51}, headers=_auth(key))
    assert too_many.status_code == 413
    assert too_many.json() == {"error": "51 customers in one request is over the limit of 50; split the batch"}
    bad = httpx.post(f"{base}/v1/score", content=b"{not json", headers=_auth(key))
    assert bad.status_code == 400 and bad.json()["error"].startswith("request body is not valid JSON")
    deep = httpx.post(f"{base}/v1/score", content=b"[" * 100_000 + b"]" * 100_000, headers=_auth(key))
    assert deep.status_code == 400
    huge = httpx.post(f"{base}/v1/score", content=b" " * (5 << 20), headers=_auth(key))
    assert huge.status_code == 413
    invalid = httpx.post(f"{base}/v1/score", json={**CUSTOMER, "age": "old"}, headers=_auth(key))
    assert invalid.status_code == 400 and "age" in invalid.json()["error"]


def test_metrics_parse_with_prometheus_client(server):
    _, base, key = server
    httpx.post(f"{base}/v1/score", json=CUSTOMER, headers=_auth(key), timeout=60)
    httpx.post(f"{base}/v1/score", json=CUSTOMER)
    text = httpx.get(f"{base}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = families["custscore_api_request_seconds"]
    assert any(s.labels.get("endpoint") == "/v1/score" for s in latency.samples)
    statuses = {(s.labels["endpoint"], s.labels["status"]) for s in families["custscore_api_requests"].samples
                if s.name.endswith("_total")}
    assert ("/v1/score", "200") in statuses and ("/v1/score", "401") in statuses
    versions = families["custscore_api_model_version_info"].samples
    assert [s.labels["task"] for s in versions] == ["churn"]


def test_a_revoked_key_is_refused_at_the_next_request(server):
    home, base, _ = server
    created = cli(home, "apikey", "create", "temp")
    key = next(line for line in created.stdout.splitlines() if line.startswith("cs_"))
    assert httpx.get(f"{base}/v1/models", headers=_auth(key)).status_code == 200
    assert cli(home, "apikey", "revoke", "temp").exit_code == 0
    refused = httpx.get(f"{base}/v1/models", headers=_auth(key))
    assert refused.status_code == 401 and refused.json() == {"error": NO_KEY}


def test_a_key_revoked_after_it_scored_is_refused_at_its_next_score_request(server):
    home, base, _ = server
    created = cli(home, "apikey", "create", "scorer")
    key = next(line for line in created.stdout.splitlines() if line.startswith("cs_"))
    body = {"customers": [CUSTOMER], "events": EVENTS, "as_of": AS_OF}
    assert httpx.post(f"{base}/v1/score", json=body, headers=_auth(key), timeout=60).status_code == 200
    assert cli(home, "apikey", "revoke", "scorer").exit_code == 0
    refused = httpx.post(f"{base}/v1/score", json=body, headers=_auth(key), timeout=60)
    assert refused.status_code == 401 and refused.json() == {"error": NO_KEY}


def test_a_promotion_reaches_the_running_server(server):
    home, base, key = server
    trained = cli(home, "train", "--task", "churn", "--models", "linear", "--cv", "2", "--no-promote")
    assert trained.exit_code == 0, trained.output
    store = open_store(Settings.build(home=home, environ={}))
    newest = store["models"].find_one({"task": "churn", "aliases": {"$ne": "production"}})["version"]
    assert cli(home, "promote", "churn", newest).exit_code == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        loaded = httpx.get(f"{base}/v1/models", headers=_auth(key)).json()["loaded"]
        if loaded.get("churn") == newest:
            break
        time.sleep(0.2)  # the server re-reads the promoted versions at most once a second
    assert loaded["churn"] == newest


def test_a_worker_with_an_empty_home_scores_with_models_trained_elsewhere(server, tmp_path):
    home, _, _ = server
    uri = f"embedded:{home / 'store.sqlite'}"
    empty = tmp_path / "worker-home"
    result = cli(empty, "--mongo-uri", uri, "score", "--once", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    store = open_store(Settings.build(home=home, environ={}))
    total, dead = store["customers"].count(), store["dead_letters"].count()
    assert store["customers"].count({"score.model_versions.churn": {"$exists": True}}) == total - dead > 0
    assert any((empty / "models" / "churn").iterdir())  # the cache was filled from the database
