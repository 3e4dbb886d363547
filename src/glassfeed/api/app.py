"""The FastAPI application: settings, store + Ingestor on ``app.state``; ingest, feed, Bluesky and web routes.

Every error body is ``{"error": "...", "detail": [{"index", "field", "reason"}]}`` (``glassfeed.api.errors``).
Every request passes the guards of ``glassfeed.api.middleware`` (security headers, 500s that keep the
connection, the anonymous feed rate limit, the body size limit), set from ``[api]``, and is counted, timed and
given a request id by ``glassfeed.api.observability`` (``/metrics``, ``/readyz``, JSON log lines).

Shutdown (the lifespan's end, after the server has answered its requests in flight): the feed service stops
tailing the store and writes its queued impressions, the Redis clients close, then the store.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from glassfeed.api.errors import install_error_handlers, server_error
from glassfeed.api.middleware import (
    AnonymousFeedLimit,
    BodyLimit,
    BodyTooLarge,
    CatchErrors,
    RateLimits,
    SecurityHeaders,
    TokenBuckets,
    body_too_large,
)
from glassfeed.api.observability import Metrics, RequestContext, configure_logging
from glassfeed.api.observability import router as ops_router
from glassfeed.api.routes_ads import install as install_ads
from glassfeed.api.routes_creators import install as install_creators
from glassfeed.api.routes_experiments import install as install_experiments
from glassfeed.api.routes_feed import install as install_feed
from glassfeed.api.routes_ingest import router as ingest_router
from glassfeed.api.routes_moderation import install as install_moderation
from glassfeed.api.routes_notifications import install as install_notifications
from glassfeed.api.routes_suggestions import install as install_suggestions
from glassfeed.api.routes_trends import install as install_trends
from glassfeed.api.schemas import APP_RESPONSES
from glassfeed.bluesky.xrpc import GET_SKELETON
from glassfeed.bluesky.xrpc import install as install_bluesky
from glassfeed.ingest import Ingestor
from glassfeed.settings import Settings, load_settings
from glassfeed.store import open_store
from glassfeed.web.ads import install as install_ads_web
from glassfeed.web.creators import install as install_creators_web
from glassfeed.web.moderation import install as install_moderation_web
from glassfeed.web.routes import install as install_web
from glassfeed.web.trends import install as install_trends_web


def close_redis_clients(*holders: object) -> None:
    """Close the (synchronous) Redis client of each holder that has one (``holder.client``, as the shared paging
    sessions, the pages kept for ``why`` and the browser sessions do); other holders and None are skipped."""
    for holder in holders:
        client = getattr(holder, "client", None)
        if isinstance(client, redis.Redis):
            client.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on the store ``settings.store`` names. ``settings`` default: ``load_settings()`` (defaults,
    glassfeed.toml, environment): this factory is an edge (``uvicorn --factory``)."""
    settings = settings or load_settings()
    configure_logging(settings.api.log_format)
    store = open_store(settings.store.path, settings.store.synchronous, settings.store.sqlite_cache_mib)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The serving state, models and id maps are built and live as long as the server: move them out of the
        # collector's generations (gc.freeze), so that a full collection, which the flow of impressions triggers
        # from time to time, scans only what was made since (on the 10k x 30 store: ~155k tracked objects, about
        # 90 ms for one full collection, a stall of every request in flight on this worker).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()  # what the app held becomes collectable again once it is dropped (tests build many apps)
        # the server has stopped accepting and its requests in flight have been answered (uvicorn's graceful stop)
        ads = getattr(app.state, "ads", None)
        if ads is not None:
            ads.close()  # write the ad impressions still queued (billed ones among them) before the store closes
        feed = getattr(app.state, "feed", None)
        if feed is not None:
            feed.close()  # stop tailing the store, write the impressions still queued before the store closes
        limits = getattr(app.state, "rate_limits", None)  # made on the first request (AnonymousFeedLimit)
        if isinstance(limits, RateLimits):
            await limits.aclose()
        close_redis_clients(getattr(feed, "sessions", None), getattr(feed, "shared_pages", None))
        close_redis_clients(getattr(app.state, "web_sessions", None))
        store.close()

    app = FastAPI(
        title="glassfeed",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        description="A transparent feed-ranking engine: ingest events, serve explained feeds.",
        responses=APP_RESPONSES,  # every 422 (and 413) body is ErrorOut, not FastAPI's HTTPValidationError
    )
    app.state.settings = settings
    app.state.store = store
    app.state.ingestor = Ingestor(store, settings.ingest)
    install_error_handlers(app)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    api = settings.api
    # add_middleware: the last added runs first (outermost)
    app.add_middleware(BodyLimit, max_bytes=api.max_body_bytes)
    buckets = TokenBuckets(api.anonymous_feed_rate_per_s, api.anonymous_feed_burst, api.anonymous_feed_clients)
    app.add_middleware(AnonymousFeedLimit, buckets=buckets, paths=("/v1/feed",), xrpc_paths=(f"/xrpc/{GET_SKELETON}",))
    app.add_middleware(CatchErrors, on_error=server_error)
    docs = [u for u in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if u]
    csp_docs = dict.fromkeys(docs, api.docs_content_security_policy)
    app.add_middleware(SecurityHeaders, csp=api.content_security_policy, csp_by_path=csp_docs)
    app.state.metrics = metrics = Metrics(api)
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: every answer is counted and carries its id

    app.include_router(ingest_router)
    app.include_router(ops_router)
    install_feed(app)
    app.state.feed.page_listeners.append(metrics.observe_page)
    install_moderation(app)
    install_notifications(app)
    install_suggestions(app)  # people you may know: reads the feed's state
    install_ads(app)
    install_experiments(app)  # after the ads and notifications: it sets their levers per arm
    install_trends(app)
    install_creators(app)  # "why did my post travel": reads the store and the feed's state
    install_bluesky(app)
    install_web(app)
    install_moderation_web(app)
    install_ads_web(app)
    install_trends_web(app)
    install_creators_web(app)
    return app
