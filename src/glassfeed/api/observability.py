"""Operations: Prometheus metrics (``/metrics``), readiness (``/readyz``), a request id on every request, and
JSON log lines that carry it.

Metrics live in one ``CollectorRegistry`` per app (not the process-global one), so two apps in one process (the
tests) never share counters. Routes are labelled by their template (``/v1/users/{user_id}/feed``), never by the
raw path, so a scan of random URLs cannot grow the label set; an unmatched path is ``unmatched``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glassfeed.settings import ApiSettings

log = logging.getLogger("glassfeed.access")

#: The request id of the request being handled, for log lines (``JsonFormatter``).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
#: A request id a client may send in ``X-Request-ID`` (else the server makes one).
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Metrics:
    """The app's metrics, in their own registry."""

    def __init__(self, api: ApiSettings) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "glassfeed_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "glassfeed_http_request_duration_seconds",
            "time to answer an HTTP request",
            ["method", "route"],
            buckets=api.latency_buckets_s,
            registry=r,
        )
        self.pages = Counter("glassfeed_feed_pages", "feed pages served", ["policy", "fallback"], registry=r)
        self.candidates = Histogram(
            "glassfeed_feed_candidates", "candidates per feed page", buckets=api.candidate_buckets, registry=r
        )
        self.model = Gauge("glassfeed_model_info", "the serving models' version (value 1)", ["version"], registry=r)
        self.model_age = Gauge(
            "glassfeed_model_age_seconds", "seconds since the serving models were trained", registry=r
        )
        self.compiled = Gauge(
            "glassfeed_heads_compiled", "heads whose trees run compiled (the rest on LightGBM's predict)", registry=r
        )
        self.lag = Gauge("glassfeed_ingest_lag_events", "committed events not yet in the serving state", registry=r)
        self.queue = Gauge("glassfeed_impression_queue_depth", "served impressions not yet written", registry=r)

    def observe_page(self, page: dict[str, Any]) -> None:
        """A ``FeedService`` page listener."""
        self.pages.labels(page["policy"], "yes" if page.get("fallback") else "no").inc()
        self.candidates.observe(page.get("candidates", 0))


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestContext:
    """ASGI middleware: a request id (the client's ``X-Request-ID`` when well-formed, else a new one) set for the
    request's log lines and echoed in the response; the request's latency and status counted in ``metrics``; one
    access log line per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = sent if _CLIENT_ID.fullmatch(sent) else uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            took = time.perf_counter() - start
            route, method = _route_of(scope), scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(took)
            log.info("%s %s %d", method, route, status, extra={"status": status, "duration_ms": round(took * 1000, 2)})
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message, the request id and any ``extra`` fields."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": REQUEST_ID.get(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(fmt: str) -> None:
    """Log glassfeed's records (and uvicorn's) to stderr, as JSON lines or text; idempotent."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.set_name("glassfeed")
    for name in ("glassfeed", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if h.get_name() != "glassfeed"] + [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


router = APIRouter()


_TEXT = {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
_READY = {"content": {"application/json": {"schema": {"type": "object", "required": ["ready", "checks"]}}}}


@router.get("/metrics", tags=["operations"], response_class=Response, responses={200: _TEXT})
def metrics(request: Request) -> Response:
    """Prometheus metrics: per-route request counts and latency, feed pages by policy and fallback, candidates per
    page, the serving models' version and age, how many heads run compiled, ingest lag (events behind the log) and
    the impression queue."""
    m: Metrics = request.app.state.metrics
    svc = request.app.state.feed
    m.model.clear()
    m.model.labels(svc.model_version).set(1)
    m.model_age.set(time.time() - svc.model_trained_at if svc.model_trained_at else 0.0)
    m.compiled.set(len(svc.models.heads.compiled))
    m.lag.set(svc.ingest_lag())
    m.queue.set(svc.impression_queue_depth())
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    tags=["operations"],
    responses={200: {"description": "ready", **_READY}, 503: {"description": "not ready: see the checks", **_READY}},
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the store answers and the serving state is within ``[api] ready_max_lag_events`` of the event
    log; the serving models' version is reported (models that fail to load stop the server at start). 200 or
    503, with each check."""
    svc = request.app.state.feed
    checks: dict[str, Any] = {}
    try:
        checks["store"] = {"ok": True, "max_seq": request.app.state.store.max_seq()}
    except Exception as e:  # any store failure means not ready; the answer names it
        checks["store"] = {"ok": False, "error": type(e).__name__}
    lag = svc.ingest_lag() if checks["store"]["ok"] else None
    limit = request.app.state.settings.api.ready_max_lag_events
    checks["state"] = {"ok": lag is not None and lag <= limit, "lag_events": lag, "max_lag_events": limit}
    checks["models"] = {
        "ok": True,
        "version": svc.model_version,
        "trained_at": svc.model_trained_at or None,
        "compiled_heads": sorted(svc.models.heads.compiled),  # the others run on LightGBM's predict (same numbers)
    }
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


__all__ = ["Metrics", "RequestContext", "JsonFormatter", "configure_logging", "router", "REQUEST_ID"]
