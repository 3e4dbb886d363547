"""Uniform JSON errors for the HTTP API: every error body is ``{"error": "...", "detail": [...]}``.

``detail`` items are ``{"index", "field", "reason"}`` (``index`` -1 when the error is not about one item of a
batch). Bad input is always a 4xx; an unhandled exception is logged and answered 500 with its type only, by
``api.middleware.CatchErrors`` (Starlette's catch-all re-raises after answering, which made the server drop the
keep-alive connection).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from glassfeed.ingest import IngestError

log = logging.getLogger("glassfeed.api")

#: Status of an ``IngestError`` -> the title of its error message (422 and others: nothing was written).
_INGEST_TITLES = {
    400: "malformed request",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    413: "batch too large",
}


def error_body(error: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON body of every API error."""
    return {"error": error, "detail": detail or []}


def ingest_error(request: Request, exc: Exception) -> JSONResponse:
    """An ``IngestError``: its status (422 made 409 when every item already exists), per-item details."""
    assert isinstance(exc, IngestError)
    status = exc.status
    if status == 422 and all("already exists" in e.reason for e in exc.errors):
        status = 409
    title = _INGEST_TITLES.get(status, "invalid batch: nothing was written")
    n = len(exc.errors)
    msg = f"{title} ({n} error{'s' if n > 1 else ''}; first: {exc.errors[0].field}: {exc.errors[0].reason})"
    return JSONResponse(error_body(msg, [e.as_dict() for e in exc.errors]), status_code=status)


def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation: 400 for a body that is not JSON, else 422, one detail per problem."""
    assert isinstance(exc, RequestValidationError)
    items = []
    for e in exc.errors():
        loc = [p for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        index = next((p for p in loc if isinstance(p, int)), -1)
        field = ".".join(str(p) for p in loc if not isinstance(p, int)) or "body"
        items.append({"index": index, "field": field, "reason": e.get("msg", "invalid")})
    status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
    return JSONResponse(error_body("invalid request", items), status_code=status)


#: The methods an ``Allow`` header may name.
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of ``request``'s path: every method some route answers there (Starlette's own 405
    names only the first matching route's, so ``GET /x`` beside ``DELETE /x`` answered ``Allow: GET``)."""
    routes = request.app.router.routes
    ok = [m for m in _METHODS if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes)]
    return ", ".join(ok)


def http_error(request: Request, exc: Exception) -> JSONResponse:
    """An ``HTTPException`` raised by a route (or Starlette's 404/405), with its status and headers; a 405
    names every method of the path in ``Allow``."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and "Allow" in headers:
        headers["Allow"] = allowed_methods(request) or headers["Allow"]
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=headers)


def server_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback, answered 500 naming only the exception type."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(f"internal error: {type(exc).__name__}"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer the known errors on ``app`` with ``error_body`` (routes may add more specific handlers after this).
    No handler for ``Exception`` here: ``api.middleware.CatchErrors`` answers those with ``server_error``."""
    app.add_exception_handler(IngestError, ingest_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
