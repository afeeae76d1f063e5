"""Prometheus metrics of the API and of the scorer worker, through prometheus-client (no hand-written exposition).

Each :class:`ApiMetrics` / :class:`WorkerMetrics` has a registry of its own, so
tests and several apps in one process never collide on metric names. When
``PROMETHEUS_MULTIPROC_DIR`` is set (``custscore serve --processes N`` sets it
for its replicas), the API's values live in that directory and ``/metrics`` of
any replica adds up every replica's, through prometheus-client's multiprocess
collector.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable for metrics shared by processes


class _Versions:
    """A labelled gauge of the loaded model versions: value 1 for each (task, version) loaded now.

    Shared by processes, the gauge is the maximum over them (1 while any replica has the version loaded), and a
    version a process no longer has is set to 0 there: a value in the shared files cannot be removed."""

    def __init__(self, registry: CollectorRegistry, prefix: str, shared: bool = False):
        self.gauge = Gauge(f"{prefix}_model_version_info", "Loaded production model version (1 = loaded)",
                           ["task", "version"], registry=registry, multiprocess_mode="max")
        self.shared = shared
        self.current: dict[str, str] = {}

    def set(self, versions: dict[str, str]) -> None:
        if versions == self.current:
            return
        for task, version in self.current.items():
            if self.shared:
                self.gauge.labels(task=task, version=version).set(0)
            else:
                self.gauge.remove(task, version)
        for task, version in versions.items():
            self.gauge.labels(task=task, version=version).set(1)
        self.current = dict(versions)


class ApiMetrics:
    """Request latency per endpoint, requests by endpoint and status, model versions."""

    def __init__(self) -> None:
        self.shared = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        self.latency = Histogram("custscore_api_request_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("custscore_api_requests", "Requests by endpoint and HTTP status",
                                ["endpoint", "status"], registry=self.registry)
        self.versions = _Versions(self.registry, "custscore_api", shared=self.shared)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.latency.labels(endpoint=endpoint).observe(seconds)
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def set_versions(self, versions: dict[str, str]) -> None:
        self.versions.set(versions)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition and its content type (of every replica, when shared by processes)."""
        if not self.shared:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        every = CollectorRegistry()
        multiprocess.MultiProcessCollector(every)
        return generate_latest(every), CONTENT_TYPE_LATEST


class WorkerMetrics:
    """Throughput, insert-to-score latency, backlog, dead letters, stale scores and the last batch time of a worker."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scored = Counter("custscore_worker_scored", "Customer scores written", registry=self.registry)
        self.throughput = Gauge("custscore_worker_throughput", "Customers scored per second over the last 10 s",
                                registry=self.registry)
        self.latency = Histogram("custscore_worker_latency_seconds", "From a customer's change to its score write",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.backlog = Gauge("custscore_worker_backlog", "Customers waiting to be scored", registry=self.registry)
        self.dead_letters = Gauge("custscore_worker_dead_letters", "Dead letters written by this worker",
                                  registry=self.registry)
        self.stale = Gauge("custscore_worker_stale_scores", "Scores older than --max-age", registry=self.registry)
        self.last_batch = Gauge("custscore_worker_last_batch_timestamp_seconds", "Unix time of the last batch",
                                registry=self.registry)
        self.versions = _Versions(self.registry, "custscore_worker")
        self._scored_seen = 0

    def update(self, stats: Any, latencies_ms: list[float] = ()) -> None:
        """Copy a WorkerStats snapshot (and the latencies of the batch just written) into the metrics."""
        if stats.scored > self._scored_seen:
            self.scored.inc(stats.scored - self._scored_seen)
            self._scored_seen = stats.scored
        self.throughput.set(stats.throughput)
        self.backlog.set(stats.backlog)
        self.dead_letters.set(stats.dead_letters)
        self.stale.set(getattr(stats, "stale", 0) or 0)
        if stats.last_batch_at is not None:
            self.last_batch.set(stats.last_batch_at.replace(tzinfo=dt.UTC).timestamp())
        for ms in latencies_ms:
            self.latency.observe(ms / 1000.0)
        self.versions.set(dict(stats.versions))

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Expose the metrics on ``http://addr:port/metrics`` from a daemon thread; returns the server."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
