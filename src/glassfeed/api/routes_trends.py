"""Trend routes: ``GET /v1/trends`` (global, or one community's), each trend with its explanation; public, as the ad
repository is (aggregates over many accounts, no one's personal data). ``install(app)`` builds the TrendService
beside the FeedService."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse

from glassfeed.api.routes_feed import FastJSON
from glassfeed.api.schemas import error_responses, json_error_responses, object_response
from glassfeed.trends.policy import load_trend_policy
from glassfeed.trends.service import TrendService

router = APIRouter()
_PUBLISH = load_trend_policy().publish  # the packaged limits, documented; the live policy's are checked by the service


def _trends(request: Request) -> TrendService:
    return request.app.state.trends


@router.get(
    "/v1/trends",
    tags=["trends"],
    response_class=FastJSON,
    responses={
        **object_response("the trends, each with its numbers and explanation, and the held-back terms"),
        **error_responses(422),
    },
)
def trends(
    request: Request,
    community: Annotated[
        int | None, Query(ge=0, description="one community's trends (its accounts' posts); none: every account's")
    ] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=_PUBLISH.max_limit, description=f"how many trends (default {_PUBLISH.default_limit})"),
    ] = None,
) -> FastJSON:
    """Topics and hashtags rising far above their own usual rate, after the anti-manipulation rules (account age,
    one post per account, accounts created together or posting in lockstep count once). Each trend says how many
    posts and accounts, how fast against its usual rate, since when, and what was discounted and why; terms the
    rules held back are listed with the reason (``held_back``). No login."""
    return FastJSON(_trends(request).trends(community, limit))


@router.get(
    "/v1/trends/rules", tags=["trends"], response_class=PlainTextResponse, responses=json_error_responses(413, 422, 429)
)
def trend_rules(request: Request) -> str:
    """The trend rules in force, as their TOML data's plain-language statement."""
    return _trends(request).describe()


def install(app: FastAPI) -> None:
    """Build the TrendService on the app's FeedService and add the routes."""
    app.state.trends = TrendService(app.state.feed, app.state.settings.trends)
    app.include_router(router)


__all__ = ["install", "router"]
