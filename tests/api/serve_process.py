"""A real `custscore serve` process on 127.0.0.1 for the API tests: its key, port and readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.cli.test_cli_foundation import cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a socket that is not open yet: there is no event to wait on
    raise AssertionError("serve did not become ready")


def trained_home(home, customers: int, seed: int, models: str) -> str:
    """Simulate ``customers`` in ``home``, train churn with ``models`` (2-fold CV) and return a new API key."""
    assert cli(home, "simulate", "--customers", str(customers), "--seed", str(seed)).exit_code == 0
    trained = cli(home, "train", "--task", "churn", "--models", models, "--cv", "2")
    assert trained.exit_code == 0, trained.output
    return create_key(home)


def create_key(home) -> str:
    """A new API key named app1 in ``home``'s store."""
    created = cli(home, "apikey", "create", "app1")
    assert created.exit_code == 0, created.output
    return next(line for line in created.stdout.splitlines() if line.startswith("cs_"))


def start_serve(home, *options: str) -> tuple[subprocess.Popen, str]:
    """`custscore serve OPTIONS` on a free port of 127.0.0.1 over ``home`` (its embedded store), and its base URL,
    once ready. The caller terminates the process."""
    port = free_port()
    env = {**os.environ, "CUSTSCORE_HOME": str(home), "CUSTSCORE_METRICS_TOKEN": ""}
    env.pop("CUSTSCORE_MONGO_URI", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "custscore", "serve", "--host", "127.0.0.1", "--port", str(port),
                             *options], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
    except BaseException:
        proc.terminate()
        proc.wait(timeout=30)
        raise
    return proc, base
