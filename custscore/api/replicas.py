"""``custscore serve --processes N``: N copies of the API on one port, one per core, sharing only the database.

One process scores on one thread (the GIL), so on two cores it answers at most about one core's worth of
requests. uvicorn's own supervisor runs the replicas: it binds the port once, spawns ``N`` processes that accept
on the same socket (the kernel spreads the connections), restarts a replica that dies and stops them all on
Ctrl-C or SIGTERM. Each replica opens its own store connection and loads the production models itself, through
:func:`app_from_environment` (uvicorn's application factory), which reads the settings the parent resolved from
the environment. Request metrics are shared through prometheus-client's multiprocess directory, so ``/metrics``
of any replica counts the requests of all of them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any

from custscore.api.metrics import MULTIPROC_ENV
from custscore.config import Settings
from custscore.errors import ConfigError

log = logging.getLogger(__name__)

OPTIONS_ENV = "CUSTSCORE_SERVE_OPTIONS"  # the serve options a replica needs (JSON), set by the parent
FACTORY = "custscore.api.replicas:app_from_environment"


def check_processes(processes: int, settings: Settings) -> None:
    """A ConfigError unless ``processes`` replicas can share ``settings``' store."""
    if processes < 1:
        raise ConfigError(f"--processes {processes} is not a number of processes; use 1 or more, e.g. --processes 2")
    if processes > 1 and settings.backend == "memory":
        raise ConfigError(f"--processes {processes} needs a store the processes share, and memory: lives in one "
                          "process; use embedded:PATH or mongodb://… (or --processes 1)")


def app_from_environment() -> Any:
    """The API of one replica: the store and settings from the environment the parent set, models loaded here."""
    from custscore.api.app import create_app
    from custscore.api.service import ScoringService
    from custscore.store import open_store

    options = json.loads(os.environ[OPTIONS_ENV])
    settings = Settings.build()
    store = open_store(settings)
    service = ScoringService(store, settings)
    if service.models is None:
        log.warning("replica %d: %s; /v1/score answers 503 until then", os.getpid(), service.load_error)
    return create_app(service, metrics_token=options.get("metrics_token"), max_batch=options["max_batch"],
                      max_body_bytes=options["max_body_bytes"], on_shutdown=store.close)


def run_replicas(settings: Settings, processes: int, *, host: str, port: int, metrics_token: str | None,
                 max_batch: int, max_body_bytes: int) -> None:
    """Serve ``processes`` replicas on ``host:port`` until stopped (blocks)."""
    import uvicorn

    check_processes(processes, settings)
    shared_metrics = tempfile.mkdtemp(prefix="custscore-metrics-")
    saved = {k: os.environ.get(k) for k in (*settings.environment(), OPTIONS_ENV, MULTIPROC_ENV)}
    os.environ.update(settings.environment())
    os.environ[OPTIONS_ENV] = json.dumps({"metrics_token": metrics_token, "max_batch": max_batch,
                                          "max_body_bytes": max_body_bytes})
    os.environ[MULTIPROC_ENV] = shared_metrics
    try:
        uvicorn.run(FACTORY, factory=True, workers=processes, host=host, port=port, log_level="warning",
                    access_log=False)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(shared_metrics, ignore_errors=True)
