"""HTTP API latency and throughput against a real `custscore serve` on loopback, and the sources' naive endpoint.

    python bench/serve.py [--home DIR] [--requests 200] [--seconds 30] [--client stdlib|httpx] [--processes 1,2]
    python bench/serve.py --home DIR --in-process [--repeat 30]

Without --home it simulates 2,000 customers and trains every task (a few
families, 2-fold CV) in a temporary home. Each level (concurrency 1, 8, 32;
1 and 100 customers per request) is bounded by --requests and --seconds, and
the table is run once per `serve --processes` count (default: 1, then 2). The
naive peer is the endpoint the sources describe: it loads the model on every
call and scores one row (here: `load_production` + the same scoring per request),
served by uvicorn from this file on another port. Prints p50/p99 and requests/s,
and the speed-up of ours over the naive one at concurrency 1, as ratios measured
in this run. The load comes from threads with one keep-alive connection each, through the standard library's
http.client by default (it costs the client a few times less CPU per request than httpx, and the client shares the
two cores with the server); the concurrency-8 level is also timed with the other client, in the same run.

``--in-process`` measures the compute alone, without HTTP: milliseconds per ``score_given`` call for 1, 8 (one
micro-batch at concurrency 8) and 100 customers, against the same calls with the features through pandas and the
prep through sklearn (the paths every call took before the NumPy ones), alternating, in this process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "custscore"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(home: Path, *args: str) -> str:
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    return subprocess.run([*CLI, *args], env=env, check=True, capture_output=True, text=True).stdout


def prepare(home: Path) -> None:
    print(f"preparing {home}: simulate 2,000 customers, train every task", flush=True)
    run(home, "simulate", "--customers", "2000", "--seed", "11")
    run(home, "train", "--task", "all", "--models", "linear,tree,xgboost", "--cv", "2")


def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{base} not ready")


def customers(home: Path, n: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from custscore.config import Settings
    from custscore.store import open_store

    store = open_store(Settings.build(home=home, environ={}))
    docs = list(store["customers"].find({}, projection={"score": 0, "_truth": 0, "purchase_history": 0,
                                                        "updated_at": 0, "ingested_at": 0}, limit=n))
    store.close()
    for d in docs:
        d.pop("_id", None)
        for k, v in list(d.items()):
            if hasattr(v, "isoformat"):
                d[k] = v.isoformat()
    return docs


def _httpx_sender(base: str, headers: dict) -> tuple[Callable[[bytes], int], Callable[[], None]]:
    client = httpx.Client(timeout=60)
    sent = {**headers, "Content-Type": "application/json"}
    return (lambda body: client.post(f"{base}/v1/score", content=body, headers=sent).status_code), client.close


def _stdlib_sender(base: str, headers: dict) -> tuple[Callable[[bytes], int], Callable[[], None]]:
    """A keep-alive ``http.client`` connection: a few times less client CPU per request than httpx, so the
    client's own work (on the same two cores) inflates the server's latency less."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    sent = {**headers, "Content-Type": "application/json"}

    def send(body: bytes) -> int:
        conn.request("POST", "/v1/score", body=body, headers=sent)
        response = conn.getresponse()
        response.read()
        return response.status

    return send, conn.close


CLIENTS = {"stdlib": _stdlib_sender, "httpx": _httpx_sender}


def load(base: str, headers: dict, bodies: list, concurrency: int, requests: int, seconds: float,
         client: str = "stdlib") -> dict:
    """Send up to ``requests`` POSTs from ``concurrency`` threads (one keep-alive connection each) for at most
    ``seconds``; latencies in ms. Bodies are encoded once, before the clock starts."""
    encoded = [json.dumps(b).encode() for b in bodies]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        send, close = CLIENTS[client](base, headers)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                try:
                    status = send(encoded[i % len(encoded)])
                except (httpx.TransportError, OSError, http.client.HTTPException):  # a timeout is an error, not a crash
                    status = None
                    close()
                    send, close = CLIENTS[client](base, headers)
                ms = (time.perf_counter() - started) * 1000
                with lock:
                    if status == 200:
                        latencies.append(ms)
                    else:
                        errors[0] += 1
        finally:
            close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ordered = sorted(latencies) or [float("nan")]
    return {"n": len(latencies), "errors": errors[0], "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(0.99 * (len(ordered) - 1) + 0.5))], "rps": len(latencies) / wall}


def naive_server(home: str, port: int) -> None:
    """The sources' endpoint: load the model on every call, score one row."""
    import uvicorn

    sys.path.insert(0, str(ROOT))
    from custscore.clock import now
    from custscore.config import Settings
    from custscore.models.predict import load_production
    from custscore.scorer.oneoff import score_given
    from custscore.store import open_store

    settings = Settings.build(home=home, environ={})
    store = open_store(settings)
    api = FastAPI()

    @api.get("/readyz")
    def ready() -> dict:
        return {"ok": True}

    @api.post("/v1/score")
    async def score(request: Request) -> dict:
        body = await request.json()
        models = load_production(store, settings)  # what the naive endpoint does on every call
        result = score_given(store, models, body["customers"][:1], as_of=now())[0]
        return {"churn_probability": result.score.get("churn_probability")}

    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def in_process(home: Path, repeat: int) -> None:
    """ms per score_given call (1, 8, 100 customers): the fast paths against pandas features + sklearn prep."""
    sys.path.insert(0, str(ROOT))
    from custscore.clock import now
    from custscore.config import Settings
    from custscore.models import feature_reads
    from custscore.models.predict import load_production
    from custscore.models.prep_numpy import FeatureRows, sklearn_transform
    from custscore.scorer.oneoff import score_given, validated_customers
    from custscore.store import open_store

    settings = Settings.build(home=home, environ={})
    store = open_store(settings)
    models = load_production(store, settings)
    docs = customers(home, 300)
    when = now()
    fast = {t: e.transform for t, e in models.explainers.items()}

    def slow_call(batch):  # events as a frame: customer_features' pandas path; prep through sklearn
        for e in models.explainers.values():
            e.transform = lambda X, p=e.pipeline, c=e.raw_names: sklearn_transform(
                p, X.select(c) if isinstance(X, FeatureRows) else X)
        try:
            clean = validated_customers(batch)
            ev = feature_reads.read_events(store, [str(d["_id"]) for d in clean], until=when)
            return models.score_documents(clean, ev, when)
        finally:
            for t, e in models.explainers.items():
                e.transform = fast[t]

    def fast_call(batch):
        return score_given(store, models, batch, as_of=when)

    print(f"{'customers/call':>14} {'fast ms':>9} {'pandas+sklearn ms':>18} {'ratio':>6}")
    for size in (1, 8, 100):
        batches = [docs[i:i + size] for i in range(0, len(docs) - size + 1, size)] or [docs[:size]]
        timings = {"fast": [], "slow": []}
        fast_call(batches[0]), slow_call(batches[0])  # warm-up
        for i in range(max(3, repeat if size == 1 else repeat // 4)):
            batch = batches[i % len(batches)]
            for name, fn in (("fast", fast_call), ("slow", slow_call)):
                started = time.perf_counter()
                fn(batch)
                timings[name].append((time.perf_counter() - started) * 1000)
        f, s_ = statistics.median(timings["fast"]), statistics.median(timings["slow"])
        print(f"{size:>14} {f:>9.1f} {s_:>18.1f} {s_ / f:>5.1f}x")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--naive-server", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--in-process", action="store_true", help="time score_given calls without HTTP (needs --home)")
    parser.add_argument("--repeat", type=int, default=30, help="calls per size with --in-process")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="stdlib",
                        help="load generator: http.client (default, lighter) or httpx; the other one is also "
                             "timed at concurrency 8, 1 customer per request")
    parser.add_argument("--processes", default="1,2",
                        help="comma-separated `serve --processes` counts; the table is run for each (default 1,2)")
    args = parser.parse_args()
    if args.in_process:
        if args.home is None:
            raise SystemExit("--in-process needs --home DIR with trained models")
        in_process(args.home, args.repeat)
        return
    if args.naive_server:
        naive_server(args.naive_server[0], int(args.naive_server[1]))
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    if args.home is None:
        prepare(home)
    key = next(line for line in run(home, "apikey", "create", f"bench{os.getpid()}").splitlines()
               if line.startswith("cs_"))
    headers = {"Authorization": f"Bearer {key}"}
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    counts = [int(n) for n in args.processes.split(",")]
    naive_port = free_port()
    naive = subprocess.Popen([sys.executable, __file__, "--naive-server", str(home), str(naive_port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    naive_base = f"http://127.0.0.1:{naive_port}"
    docs = customers(home, 500)
    singles = [{"customers": [d]} for d in docs]
    hundreds = [{"customers": docs[i:i + 100]} for i in range(0, 400, 100)]
    rows = {}
    try:
        print("load average (1, 5, 15 min) at the start: {:.1f} {:.1f} {:.1f} on {} cores".format(
            *os.getloadavg(), os.cpu_count()))
        print(f"{'processes':>9} {'customers/request':>17} {'concurrency':>11} {'requests':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'req/s':>7} {'customers/s':>11}")
        for processes in counts:
            port = free_port()
            ours = subprocess.Popen([*CLI, "serve", "--port", str(port), "--processes", str(processes)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(base, ours)
                load(base, headers, singles, 8, 40, 10, args.client)  # warm-up, reaching every replica
                for per, bodies in ((1, singles), (100, hundreds)):
                    for conc in (1, 8, 32):
                        limit = args.requests if per == 1 else max(8, args.requests // 10)
                        r = load(base, headers, bodies, conc, limit, args.seconds, args.client)
                        rows[(processes, per, conc)] = r
                        print(f"{processes:>9} {per:>17} {conc:>11} {r['n']:>8} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                              f"{r['rps']:>7.1f} {r['rps'] * per:>11.0f}"
                              + (f"  ({r['errors']} errors)" if r["errors"] else ""))
                other = next(c for c in CLIENTS if c != args.client)
                r = load(base, headers, singles, 8, args.requests, args.seconds, other)
                print(f"{processes} process(es), 1 customer/request, concurrency 8, with the {other} client instead "
                      f"of {args.client}: p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, {r['rps']:.1f} req/s")
            finally:
                ours.terminate()
                ours.wait(timeout=60)
        wait_ready(naive_base, naive)
        first = rows[(counts[0], 1, 1)]
        naive_r = load(naive_base, {}, singles, 1, max(10, args.requests // 10), args.seconds)
        print(f"naive endpoint (loads the model per call), 1 customer, concurrency 1: p50 {naive_r['p50']:.1f} ms, "
              f"p99 {naive_r['p99']:.1f} ms, {naive_r['rps']:.1f} req/s")
        print(f"speed-up of custscore serve ({counts[0]} process(es)) over the naive endpoint at concurrency 1: "
              f"{naive_r['p50'] / first['p50']:.1f}x (p50), {first['rps'] / naive_r['rps']:.1f}x (req/s)")
        print("load average at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    finally:
        naive.terminate()
        naive.wait(timeout=30)

if __name__ == "__main__":
    main()
