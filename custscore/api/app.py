"""The FastAPI application: ``/v1/score``, ``/v1/explain``, stored scores, models, health and Prometheus metrics.

Every ``/v1`` endpoint needs an API key (``Authorization: Bearer KEY`` or
``X-API-Key: KEY``; see :mod:`custscore.api.keys`). ``/healthz``, ``/readyz`` and
``/metrics`` are open, unless ``metrics_token`` is set, which then guards
``/metrics``. Errors are JSON ``{"error": "<the CLI's one-line message>"}``.
Bodies are read up to ``max_body_bytes`` and parsed here, so an oversized or
hostile body is refused before anything else runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from custscore.api.keys import KeyRefused
from custscore.api.metrics import ApiMetrics
from custscore.api.service import ScoringService
from custscore.errors import CustscoreError, InputError, ModelError, StoreError, StoreUnavailable
from custscore.store.plain import plain, plain_deep

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 << 20
MAX_BATCH = 1000
MAX_TOP = 50


class ApiError(Exception):
    """An HTTP error with its one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def to_json(value: Any) -> Any:
    """JSON-ready values: the store's one NumPy/pandas conversion (NaN to null, :func:`plain`), dates to ISO 8601.

    One walk over the result; fastapi's ``jsonable_encoder`` after ``plain_deep`` walked it twice and cost about
    4x as much, on the event loop that every concurrent request waits on. Anything unusual goes to FastAPI's encoder.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(plain_deep(value))
    value = plain(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value if value is None or type(value) in (str, int, float, bool) else jsonable_encoder(value)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class MeasureRequests:
    """ASGI middleware: each request's latency and status into the metrics; an unhandled error becomes a JSON 500.

    A plain ASGI wrapper of ``send``: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) runs every request
    through a task group and memory streams, which cost more of the event loop than the endpoint itself.
    """

    def __init__(self, app: Any, meter: ApiMetrics):
        self.app = app
        self.meter = meter

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def send_and_note(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if status[0]:
                raise  # the response has started: nothing sensible can be sent any more
            await _error(500, "internal error; see the server log")(scope, receive, send_and_note)
        finally:
            endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
            self.meter.observe(endpoint, status[0] or 500, time.perf_counter() - started)


def _status_of(exc: CustscoreError) -> int:
    if isinstance(exc, StoreUnavailable | StoreError):
        return 503
    if isinstance(exc, ModelError):
        return 503
    return 400


async def _body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body of {declared} bytes is over the limit of {limit:,} bytes; "
                            "send fewer customers per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit:,} bytes; send fewer customers per request")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:120]
        raise ApiError(400, f"request body is not valid JSON ({reason}); send a JSON object") from None


def _customers(payload: Any, max_batch: int) -> tuple[list, list, Any]:
    """(customers, events, as_of) from ``{"customers": [...], "events": [...], "as_of": ...}`` or one document."""
    if isinstance(payload, list):
        payload = {"customers": payload}
    if not isinstance(payload, dict):
        raise ApiError(400, f"request body is a JSON {type(payload).__name__}; send an object with \"customers\"")
    if "customers" not in payload:
        payload = {"customers": [payload]}
    customers, events = payload.get("customers"), payload.get("events") or []
    if not isinstance(customers, list) or not customers:
        raise ApiError(400, "field \"customers\" must be a non-empty list of customer documents")
    if not isinstance(events, list):
        raise ApiError(400, "field \"events\" must be a list of purchase events")
    if len(customers) > max_batch:
        raise ApiError(413, f"{len(customers):,} customers in one request is over the limit of {max_batch:,}; "
                            "split the batch")
    if len(events) > max_batch * 100:
        raise ApiError(413, f"{len(events):,} events in one request is over the limit of {max_batch * 100:,}")
    return customers, events, payload.get("as_of")


def create_app(service: ScoringService, *, metrics_token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES,
               max_batch: int = MAX_BATCH, metrics: ApiMetrics | None = None,
               on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The API over ``service``.

    Parameters
    ----------
    service : ScoringService
        The store and models behind the endpoints.
    metrics_token : str, optional
        When set, ``/metrics`` needs ``Authorization: Bearer <token>``.
    max_body_bytes, max_batch : int
        Request size and customers-per-request limits.
    metrics : ApiMetrics, optional
        Where request metrics go (a fresh registry by default).
    on_shutdown : callable, optional
        Called when the server stops (e.g. closing a store the app owns).
    """
    from custscore import __version__

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        try:
            yield
        finally:
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(title="custscore", version=__version__, lifespan=lifespan,
                  description="Customer scores, reasons and recommendations; the same code as `custscore predict`.")
    meter = metrics or ApiMetrics()

    def authorise(request: Request, later: bool = False) -> str:
        """The request key's digest, or KeyRefused (401). ``later``: a key already seen live is confirmed on the
        scoring thread with the rest of its batch (``KeyGate.admit``) instead of here, on the event loop."""
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key")
        return service.keys.admit(key) if later else service.keys.check(key)

    app.add_middleware(MeasureRequests, meter=meter)

    async def scored(customers: list, events: list, as_of: Any, key_digest: str) -> dict:
        # validated here and awaited on the loop (a few customers validate in well under a millisecond); with no
        # models loaded yet, a thread tries to load them (seconds) so the loop never waits on that
        if not service.loaded:
            if key_digest not in service.keys.confirm([key_digest]):
                raise KeyRefused()
            return await run_in_threadpool(service.score, customers, events, as_of)
        job = service.score_job(customers, events, as_of, key_digest=key_digest)
        return service.scored(await service.batcher.submit_async(job))

    @app.exception_handler(KeyRefused)
    async def key_refused(request: Request, exc: KeyRefused):
        return _error(401, str(exc))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error(exc.status, str(exc))

    @app.exception_handler(CustscoreError)
    async def custscore_error(request: Request, exc: CustscoreError):
        return _error(_status_of(exc), str(exc))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        """Readiness: the store answers and production models are loaded."""
        try:
            service.ready_models()
        except CustscoreError as exc:
            return _error(503, str(exc))
        return {"status": "ready", "models": service.versions}

    @app.get("/metrics", tags=["health"])
    def metrics_endpoint(request: Request):
        """Prometheus exposition."""
        if metrics_token:
            header = request.headers.get("authorization", "")
            if not hmac.compare_digest(header.encode(), f"Bearer {metrics_token}".encode()):
                return _error(401, "missing or invalid metrics token; send `Authorization: Bearer TOKEN`")
        meter.set_versions(service.versions)
        body, content_type = meter.exposition()
        return Response(body, media_type=content_type)

    @app.post("/v1/score", tags=["scoring"])
    async def score(request: Request):
        """Score one or many customer documents (optionally with their purchase events); nothing is stored.

        Body: ``{"customers": [{...}], "events": [{...}], "as_of": "YYYY-MM-DD"}`` or one customer document.
        """
        digest = authorise(request, later=True)
        customers, events, as_of = _customers(await _body(request, max_body_bytes), max_batch)
        return JSONResponse(to_json(await scored(customers, events, as_of, digest)))

    @app.post("/v1/explain", tags=["scoring"])
    async def explain(request: Request):
        """The top SHAP contributions per task, for given documents or ``{"customer_id": ID}`` of a stored one."""
        authorise(request)
        payload = await _body(request, max_body_bytes)
        top = payload.pop("top", 5) if isinstance(payload, dict) else 5
        if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= MAX_TOP:
            raise ApiError(400, f"field \"top\" is {top!r}; use a whole number from 1 to {MAX_TOP}")
        if isinstance(payload, dict) and set(payload) <= {"customer_id", "as_of"} and "customer_id" in payload:
            cid = str(payload["customer_id"])
            found = await run_in_threadpool(service.explain_stored, cid, payload.get("as_of"), top)
            if found is None:
                raise ApiError(404, f"customer {cid[:80]!r} is not in the store")
            return JSONResponse(to_json(found))
        customers, events, as_of = _customers(payload, max_batch)
        return JSONResponse(to_json(await run_in_threadpool(service.explain, customers, events, as_of, top)))

    @app.get("/v1/customers/{customer_id}/score", tags=["scoring"])
    def stored_score(customer_id: str, request: Request):
        """The score the worker last wrote on a stored customer."""
        authorise(request)
        found = service.stored_score(customer_id)
        if found is None:
            raise ApiError(404, f"customer {customer_id[:80]!r} is not in the store")
        if found["score"] is None:
            raise ApiError(404, f"customer {customer_id[:80]!r} has no score yet; run `custscore score --once`")
        return JSONResponse(to_json(found))

    @app.get("/v1/models", tags=["models"])
    def models(request: Request):
        """Production versions, the loaded ones and every registered model."""
        authorise(request)
        return JSONResponse(to_json(service.model_list()))

    if max_batch < 1 or max_body_bytes < 1024:
        raise InputError(f"limits too small: max_batch {max_batch}, max_body_bytes {max_body_bytes}")
    return app
