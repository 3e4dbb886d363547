"""The FastAPI application: store + Ingestor on ``app.state``, ingest routes, uniform JSON errors.

Every error body is ``{"error": "...", "detail": [{"index", "field", "reason"}]}``; bad input is always a 4xx.
The feed routes (``glassfeed.api.routes_feed.install``) are added when that module exists.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from glassfeed.config import Settings, load_settings
from glassfeed.ingest import IngestError, Ingestor
from glassfeed.store import open_store

log = logging.getLogger("glassfeed.api")


def error_body(error: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": error, "detail": detail or []}


def _ingest_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IngestError)
    status = exc.status
    if status == 422 and all("already exists" in e.reason for e in exc.errors):
        status = 409
    title = {400: "malformed request", 404: "not found", 409: "duplicate id", 413: "batch too large"}.get(
        status, "invalid batch: nothing was written")
    n = len(exc.errors)
    msg = f"{title} ({n} error{'s' if n > 1 else ''}; first: {exc.errors[0].field}: {exc.errors[0].reason})"
    return JSONResponse(error_body(msg, [e.as_dict() for e in exc.errors]), status_code=status)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = []
    for e in exc.errors():
        loc = [p for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        index = next((p for p in loc if isinstance(p, int)), -1)
        field = ".".join(str(p) for p in loc if not isinstance(p, int)) or "body"
        items.append({"index": index, "field": field, "reason": e.get("msg", "invalid")})
    status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
    return JSONResponse(error_body("invalid request", items), status_code=status)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def _server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(f"internal error: {type(exc).__name__}"), status_code=500)


def install_feed_routes(app: FastAPI) -> bool:
    """Add the lead's feed routes if ``glassfeed.api.routes_feed`` exists; returns whether it did."""
    try:
        from glassfeed.api.routes_feed import install
    except ModuleNotFoundError as e:
        if e.name != "glassfeed.api.routes_feed":
            raise
        return False
    install(app)
    return True


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on the store at ``settings.db_path`` (defaults + glassfeed.toml + env)."""
    settings = settings or load_settings()
    store = open_store(settings.db_path, settings.synchronous)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        feed = getattr(app.state, "feed", None)
        if feed is not None:
            feed.close()  # write the impressions still queued before the store closes
        store.close()

    app = FastAPI(title="glassfeed", version="0.1.0", lifespan=lifespan, docs_url="/docs",
                  description="A transparent feed-ranking engine: ingest events, serve explained feeds.")
    app.state.settings = settings
    app.state.store = store
    app.state.ingestor = Ingestor(store, settings.limits)
    app.add_exception_handler(IngestError, _ingest_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)

    from glassfeed.api.routes_ingest import router
    app.include_router(router)
    if install_feed_routes(app):
        from glassfeed.bluesky.xrpc import install as install_bluesky
        from glassfeed.web.routes import install as install_web
        install_bluesky(app)
        install_web(app)
    return app
