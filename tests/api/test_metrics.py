"""Worker metrics: what `score --watch --metrics-port` exposes, parsed with prometheus-client's own parser."""

from __future__ import annotations

import datetime as dt
import socket

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from custscore.api.metrics import WorkerMetrics
from custscore.scorer.worker import WorkerStats


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_metrics_are_served_and_parse():
    meter = WorkerMetrics()
    stats = WorkerStats(worker="w0", versions={"churn": "v1"}, scored=12, dead_letters=1, throughput=3.5,
                        backlog=7, stale=4, last_batch_at=dt.datetime(2026, 12, 1, 12, 0))
    meter.update(stats, [40.0, 120.0])
    stats.scored, stats.versions = 20, {"churn": "v2"}
    meter.update(stats, [60.0])
    port = _port()
    meter.serve(port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["custscore_worker_scored_total"].value == 20
    assert values["custscore_worker_backlog"].value == 7
    assert values["custscore_worker_stale_scores"].value == 4
    assert values["custscore_worker_dead_letters"].value == 1
    assert values["custscore_worker_latency_seconds_count"].value == 3
    assert values["custscore_worker_last_batch_timestamp_seconds"].value == dt.datetime(
        2026, 12, 1, 12, tzinfo=dt.UTC).timestamp()
    versions = [s.labels for f in text_string_to_metric_families(generate_latest(meter.registry).decode())
                for s in f.samples if s.name == "custscore_worker_model_version_info"]
    assert versions == [{"task": "churn", "version": "v2"}]  # the old version's series is gone
