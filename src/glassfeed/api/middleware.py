"""Pure ASGI middleware guarding every HTTP request of the app (installed by ``api.app.create_app``).

Outermost first:

- ``SecurityHeaders``: ``Content-Security-Policy`` (no inline script, ``frame-ancestors 'none'``; a route may set
  its own), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``.
- ``CatchErrors``: an unhandled exception becomes a normal 500 response (``errors.server_error``) and is not
  re-raised, so the server keeps the keep-alive connection open for the next request.
- ``AnonymousFeedLimit``: the rate limits (``RateLimits``): a token bucket per client address on the feeds anyone
  may read without a credential, one per credential and one per person on ``/v1/`` requests made with a credential
  other than the service key; 429 with ``Retry-After`` when a bucket is empty. In process (``TokenBuckets``), or in
  Redis when ``[serving] redis_url`` is set (``RedisTokenBuckets``), so that every worker counts the same requests.
- ``BodyLimit``: refuses a request body over ``[api] max_body_bytes`` before it is read: at once from its
  ``Content-Length``, else by counting the streamed bytes (413, nothing of the rest is read).

They are plain ASGI (not ``BaseHTTPMiddleware``): no task per request, streamed bodies stay streamed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import redis.asyncio as aioredis
from fastapi import HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glassfeed.api.errors import error_body
from glassfeed.settings import Settings

log = logging.getLogger("glassfeed.api")

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

    async def take_async(self, key: str) -> float:
        """``take``, for callers that may instead hold ``RedisTokenBuckets`` (one interface, ``Buckets``)."""
        return self.take(key)


#: One token bucket in Redis: refill by the time passed (Redis's clock, the same for every worker), take one token
#: or say how long until one is there; the bucket expires once it would be full again. Returns the wait as text
#: (a Lua number would come back truncated to an integer).
_BUCKET_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class Buckets(Protocol):
    async def take_async(self, key: str) -> float: ...


class RedisTokenBuckets:
    """``TokenBuckets`` kept in Redis, shared by every worker: ``<prefix>rl:<name>:<key>`` holds one bucket, updated
    atomically by a Lua script (one round trip a request)."""

    def __init__(self, client: aioredis.Redis, name: str, rate: float, burst: float, prefix: str) -> None:
        self.client, self.rate, self.burst = client, rate, burst
        self.prefix = f"{prefix}rl:{name}:"
        self._script = client.register_script(_BUCKET_LUA)

    async def take_async(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when granted, else the seconds until one is available. Redis unreachable:
        0.0 (the request is let through and a warning logged: an outage of the limiter must not stop the API)."""
        try:
            return float(await self._script(keys=[self.prefix + key], args=[self.rate, self.burst]))
        except aioredis.RedisError:
            log.warning("rate limit not applied: Redis unreachable", exc_info=True)
            return 0.0


@dataclass(frozen=True)
class RateLimits:
    """The buckets ``AnonymousFeedLimit`` charges: ``anonymous`` per client address (feeds read without a
    credential), ``per_key`` per credential and ``per_user`` per person named in ``/v1/users/{id}/...`` (both for
    requests made with a credential other than ``service_key``: the operator's backend is not limited)."""

    anonymous: Buckets
    per_key: Buckets
    per_user: Buckets
    service_key: str | None

    @classmethod
    def from_settings(cls, settings: Settings, anonymous: TokenBuckets | None = None) -> RateLimits:
        """Redis buckets when ``[serving] redis_url`` is set, else in-process ones (``anonymous``, when given, is
        the in-process anonymous bucket set to use); limits from ``[api]``."""
        api, serving = settings.api, settings.serving
        if serving.redis_url:
            t = serving.redis_timeout_s
            client = aioredis.Redis.from_url(serving.redis_url, socket_timeout=t, socket_connect_timeout=t)
            p = serving.redis_prefix
            return cls(
                RedisTokenBuckets(client, "anon", api.anonymous_feed_rate_per_s, api.anonymous_feed_burst, p),
                RedisTokenBuckets(client, "key", api.key_rate_per_s, api.key_burst, p),
                RedisTokenBuckets(client, "user", api.user_rate_per_s, api.user_burst, p),
                settings.api_key,
            )
        return cls(
            anonymous
            or TokenBuckets(api.anonymous_feed_rate_per_s, api.anonymous_feed_burst, api.anonymous_feed_clients),
            TokenBuckets(api.key_rate_per_s, api.key_burst, api.rate_limit_keys),
            TokenBuckets(api.user_rate_per_s, api.user_burst, api.rate_limit_keys),
            settings.api_key,
        )

    async def aclose(self) -> None:
        """Close the Redis client the buckets share (in-process buckets hold none)."""
        buckets = (self.anonymous, self.per_key, self.per_user)
        clients = {id(b.client): b.client for b in buckets if isinstance(b, RedisTokenBuckets)}
        for client in clients.values():
            await client.aclose()


_USER_PATH = re.compile(r"^/v1/users/([^/]+)(?:/|$)")


def _credential(headers: Headers) -> str | None:
    """The key or token a request presents (``Authorization: Bearer`` or ``X-API-Key``, as ``api.auth`` reads)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


class AnonymousFeedLimit:
    """The rate limits (``RateLimits``), 429 with ``Retry-After`` when a bucket is empty:

    - per client address, on anonymous feed requests: every request to ``paths`` (feeds that take no credential,
      so a header cannot exempt them), and requests to ``xrpc_paths`` without an ``Authorization`` header (with
      one, the route verifies it and refuses a bad one with 401); on ``xrpc_paths`` in the XRPC error body
      ``{"error", "message"}``;
    - per credential, then per person named in the path (``/v1/users/{id}/...``), on other ``/v1/`` requests
      made with a key or token other than the service key.

    ``limits`` default: built on the first request from the app's settings (``app.state.settings``:
    ``RateLimits.from_settings``, with ``buckets`` as the in-process anonymous buckets), so that a Redis client is
    made inside the server's event loop; kept as ``app.state.rate_limits`` too, for the app to close."""

    def __init__(
        self,
        app: ASGIApp,
        buckets: TokenBuckets,
        paths: Collection[str],
        xrpc_paths: Collection[str] = (),
        limits: RateLimits | None = None,
    ) -> None:
        self.app, self.buckets, self.limits = app, buckets, limits
        self.paths, self.xrpc_paths = frozenset(paths), frozenset(xrpc_paths)

    def _limits(self, scope: Scope) -> RateLimits:
        if self.limits is None:
            settings: Any = getattr(getattr(scope.get("app"), "state", None), "settings", None)
            if isinstance(settings, Settings):
                self.limits = RateLimits.from_settings(settings, self.buckets)
                scope["app"].state.rate_limits = self.limits  # closed with the app (its lifespan's end)
            else:  # an app without settings: the anonymous limit only (nothing is exempt)
                return RateLimits(self.buckets, _Unlimited(), _Unlimited(), None)
        return self.limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(("/v1/", "/xrpc/")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        anonymous = path in self.paths or (path in self.xrpc_paths and "authorization" not in headers)
        limits = self._limits(scope)
        if anonymous:
            client = scope.get("client")
            wait = await limits.anonymous.take_async(client[0] if client else "")
            if wait > 0.0:
                retry = _retry_after(wait)
                msg = f"too many anonymous feed requests from this address; retry after {retry} s (or sign in)"
                await _too_many(path in self.xrpc_paths, "client", msg, retry)(scope, receive, send)
                return
        elif (
            path.startswith("/v1/")
            and (key := _credential(headers)) is not None
            and not _is_key(key, limits.service_key)
        ):
            digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # the credential itself is never kept
            wait = await limits.per_key.take_async(digest)
            field, msg = "credential", "too many requests with this key or token"
            m = _USER_PATH.match(path)
            if wait <= 0.0 and m:
                wait = await limits.per_user.take_async(unquote(m.group(1)))
                field, msg = "user", "too many requests about this person"
            if wait > 0.0:
                retry = _retry_after(wait)
                await _too_many(False, field, f"{msg}; retry after {retry} s", retry)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Unlimited:
    async def take_async(self, key: str) -> float:
        return 0.0


def _is_key(presented: str, service_key: str | None) -> bool:
    return bool(service_key) and secrets.compare_digest(presented.encode(), str(service_key).encode())


def _retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def _too_many(xrpc: bool, field: str, msg: str, retry: str) -> JSONResponse:
    body = (
        {"error": "RateLimitExceeded", "message": msg}
        if xrpc
        else error_body("rate limited", [{"index": -1, "field": field, "reason": msg}])
    )
    return JSONResponse(body, status_code=429, headers={"retry-after": retry})


__all__ = [
    "AnonymousFeedLimit",
    "Buckets",
    "RateLimits",
    "RedisTokenBuckets",
    "BodyLimit",
    "BodyTooLarge",
    "CatchErrors",
    "SecurityHeaders",
    "TokenBuckets",
    "body_too_large",
]
