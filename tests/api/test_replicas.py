"""`custscore serve --processes N`: replicas on one port that share the store and add up their metrics."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from custscore.clock import parse_date
from custscore.config import Settings
from custscore.models.predict import load_production
from custscore.scorer.oneoff import score_given
from custscore.store import open_store
from tests.api.serve_process import start_serve, trained_home
from tests.api.test_serve import AS_OF, CUSTOMER, EVENTS
from tests.cli.test_cli_foundation import assert_one_red_line, cli


def test_zero_processes_is_refused_with_the_fix(tmp_path):
    assert_one_red_line(cli(tmp_path, "serve", "--processes", "0"),
                        "--processes 0 is not a number of processes; use 1 or more, e.g. --processes 2")


def test_a_memory_store_cannot_be_shared_by_processes(tmp_path):
    result = cli(tmp_path, "--mongo-uri", "memory:", "serve", "--processes", "2")
    assert_one_red_line(result, "--processes 2 needs a store the processes share, and memory: lives in one process")


def test_settings_survive_the_trip_through_the_environment(tmp_path):
    settings = Settings.build(home=tmp_path, mongo_uri=f"embedded:{tmp_path / 'x.sqlite'}", db_name="shop",
                              environ={"CUSTSCORE_AS_OF": "2025-03-31", "CUSTSCORE_CURRENCY": "EUR"})
    assert Settings.build(environ=settings.environment()) == settings


def _score_total(text: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return sum(s.value for s in families["custscore_api_requests"].samples
               if s.name.endswith("_total") and s.labels == {"endpoint": "/v1/score", "status": "200"})


@pytest.mark.slow
def test_two_processes_answer_like_predict_and_count_every_request_in_metrics(tmp_path):
    home = tmp_path
    key = trained_home(home, 400, 5, "linear")
    proc, base = start_serve(home, "--processes", "2")
    try:
        settings = Settings.build(home=home, environ={})
        store = open_store(settings)
        local = score_given(store, load_production(store, settings), [CUSTOMER], EVENTS,
                            as_of=parse_date(AS_OF, end_of_day=True))[0].score
        body = {"customers": [CUSTOMER], "events": EVENTS, "as_of": AS_OF}
        sent = 12
        for _ in range(sent):  # a new connection each time, so the kernel spreads them over the replicas
            response = httpx.post(f"{base}/v1/score", json=body, headers={"Authorization": f"Bearer {key}"},
                                  timeout=60)
            assert response.status_code == 200, response.text
            assert response.json()["scores"][0]["churn_probability"] == local["churn_probability"]
        for _ in range(4):  # whichever replica answers /metrics counts the requests of both
            assert _score_total(httpx.get(f"{base}/metrics").text) == sent
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert f"serving on {base} with 2 processes (docs: {base}/docs)" in output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/healthz", timeout=2)  # the replicas stopped with their supervisor
