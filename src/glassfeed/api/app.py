"""The FastAPI application: settings, store + Ingestor on ``app.state``; ingest, feed, Bluesky and web routes.

Every error body is ``{"error": "...", "detail": [{"index", "field", "reason"}]}`` (``glassfeed.api.errors``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from glassfeed.api.errors import install_error_handlers
from glassfeed.api.routes_feed import install as install_feed
from glassfeed.api.routes_ingest import router as ingest_router
from glassfeed.bluesky.xrpc import install as install_bluesky
from glassfeed.ingest import Ingestor
from glassfeed.settings import Settings, load_settings
from glassfeed.store import open_store
from glassfeed.web.routes import install as install_web


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on the store ``settings.store`` names. ``settings`` default: ``load_settings()`` (defaults,
    glassfeed.toml, environment): this factory is an edge (``uvicorn --factory``)."""
    settings = settings or load_settings()
    store = open_store(settings.store.path, settings.store.synchronous)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        feed = getattr(app.state, "feed", None)
        if feed is not None:
            feed.close()  # write the impressions still queued before the store closes
        store.close()

    app = FastAPI(
        title="glassfeed",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        description="A transparent feed-ranking engine: ingest events, serve explained feeds.",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.ingestor = Ingestor(store, settings.ingest)
    install_error_handlers(app)

    app.include_router(ingest_router)
    install_feed(app)
    install_bluesky(app)
    install_web(app)
    return app
