"""Pure ASGI middleware guarding every HTTP request of the app (installed by ``api.app.create_app``).

Outermost first:

- ``SecurityHeaders``: ``Content-Security-Policy`` (no inline script, ``frame-ancestors 'none'``; a route may set
  its own), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``.
- ``CatchErrors``: an unhandled exception becomes a normal 500 response (``errors.server_error``) and is not
  re-raised, so the server keeps the keep-alive connection open for the next request.
- ``AnonymousFeedLimit``: a token bucket per client address on the feeds anyone may read without a credential;
  429 with ``Retry-After`` when a client's bucket is empty.
- ``BodyLimit``: refuses a request body over ``[api] max_body_bytes`` before it is read: at once from its
  ``Content-Length``, else by counting the streamed bytes (413, nothing of the rest is read).

They are plain ASGI (not ``BaseHTTPMiddleware``): no task per request, streamed bodies stay streamed.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping

from fastapi import HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glassfeed.api.errors import error_body

#: Headers every response gets unless the route set them itself (the CSP comes from settings).
FIXED_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)


class SecurityHeaders:
    """Add the security headers to every HTTP response that lacks them; ``csp_by_path`` overrides the CSP for
    exact paths (the interactive API docs load their script from a CDN)."""

    def __init__(self, app: ASGIApp, csp: str, csp_by_path: Mapping[str, str] | None = None) -> None:
        self.app, self.csp, self.csp_by_path = app, csp, dict(csp_by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.csp_by_path.get(scope["path"], self.csp)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (("content-security-policy", csp), *FIXED_HEADERS):
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def answer_unless_started(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    catch: type[Exception],
    on_error: Callable[[Request, Exception], Response],
    app_receive: Receive | None = None,
) -> None:
    """Run ``app`` (reading from ``app_receive``, default ``receive``); an exception of type ``catch`` raised before
    its response started is answered with ``on_error(request, exc)``, one raised after it propagates (nothing can
    be sent any more, the connection must close)."""
    started = False

    async def send_tracking(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, app_receive or receive, send_tracking)
    except catch as exc:
        if started:
            raise
        await on_error(Request(scope), exc)(scope, receive, send)


class CatchErrors:
    """Answer an exception no handler took with ``on_error(request, exc)`` (a 500) instead of re-raising it.

    Starlette's own last-resort handler sends the 500 and then re-raises, and the server then closes the
    connection, so a client's next request on it was reset. When the response had already started nothing
    can be sent any more, and the exception propagates (the connection must close)."""

    def __init__(self, app: ASGIApp, on_error: Callable[[Request, Exception], Response]) -> None:
        self.app, self.on_error = app, on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await answer_unless_started(self.app, scope, receive, send, catch=Exception, on_error=self.on_error)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit. An ``HTTPException``, so that FastAPI's own
    body parsing re-raises it (it turns other errors into a 400) and the app's handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit:,} bytes ([api] max_body_bytes)")


def body_too_large(request: Request, exc: Exception) -> JSONResponse:
    """The 413 answer, in the API's error body (``field`` ``body``)."""
    assert isinstance(exc, HTTPException)
    reason = str(exc.detail)
    return JSONResponse(
        error_body("request body too large", [{"index": -1, "field": "body", "reason": reason}]),
        status_code=413,
        headers={"connection": "close"},
    )


class BodyLimit:
    """Refuse request bodies over ``max_bytes``: a declared ``Content-Length`` over it is answered 413 before
    the app runs; a streamed (chunked) body is counted as the app reads it and ``BodyTooLarge`` is raised from
    ``receive`` as soon as it passes the limit (answered 413 here if the app let it through)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await body_too_large(Request(scope), BodyTooLarge(self.max_bytes))(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await answer_unless_started(
            self.app, scope, receive, send, catch=BodyTooLarge, on_error=body_too_large, app_receive=counting_receive
        )


class TokenBuckets:
    """One token bucket per key (a client address): ``rate`` tokens a second up to ``burst``; at most
    ``max_keys`` buckets are kept (the least recently used are dropped, as if full)."""

    def __init__(self, rate: float, burst: float, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when granted, else the seconds until one is available."""
        now = self.clock()
        tokens, at = self._b.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._b[key] = (tokens, now)
        while len(self._b) > self.max_keys:
            self._b.popitem(last=False)
        return wait


class AnonymousFeedLimit:
    """Rate-limit anonymous feed requests per client address: every request to ``paths`` (feeds that take no
    credential, so a header cannot exempt them), and requests to ``xrpc_paths`` without an ``Authorization``
    header (with one, the route verifies it and refuses a bad one with 401). Answered 429 with ``Retry-After``
    (on ``xrpc_paths`` in the XRPC error body ``{"error", "message"}``)."""

    def __init__(
        self, app: ASGIApp, buckets: TokenBuckets, paths: Collection[str], xrpc_paths: Collection[str] = ()
    ) -> None:
        self.app, self.buckets = app, buckets
        self.paths, self.xrpc_paths = frozenset(paths), frozenset(xrpc_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        anonymous = path in self.paths or (path in self.xrpc_paths and "authorization" not in Headers(scope=scope))
        if not anonymous:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "")
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry = str(max(1, math.ceil(wait)))
        msg = f"too many anonymous feed requests from this address; retry after {retry} s (or sign in)"
        body = (
            {"error": "RateLimitExceeded", "message": msg}
            if path in self.xrpc_paths
            else error_body("rate limited", [{"index": -1, "field": "client", "reason": msg}])
        )
        await JSONResponse(body, status_code=429, headers={"retry-after": retry})(scope, receive, send)


__all__ = [
    "AnonymousFeedLimit",
    "BodyLimit",
    "BodyTooLarge",
    "CatchErrors",
    "SecurityHeaders",
    "TokenBuckets",
    "body_too_large",
]
