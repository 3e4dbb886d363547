"""Ad routes: campaigns and reports for advertisers (advertiser keys only, each sees its own), a person's ad
settings, profile and what they did with an ad (their token), the public ad repository and the ad policy (no
login). ``install(app)`` builds the AdService beside the FeedService."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from glassfeed.ads.campaigns import CampaignSpec
from glassfeed.ads.library import advertiser_report, library
from glassfeed.ads.policy import describe
from glassfeed.ads.service import ACTIONS, AdService
from glassfeed.api.auth import named_key, require_user_or_service
from glassfeed.api.routes_feed import JsonBodyRoute
from glassfeed.api.schemas import error_responses, json_error_responses, whole_number

router = APIRouter(route_class=JsonBodyRoute)
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


def _ads(request: Request) -> AdService:
    return request.app.state.ads


def require_advertiser(request: Request) -> str:
    """Dependency of the advertiser API: an advertiser key (``[ads] advertiser_keys``); returns the advertiser.
    The service key and people's tokens are not advertiser keys."""
    return named_key(request, request.app.state.settings.ads.advertiser_keys, "advertiser")


_ADV = {**error_responses(401, 403)}


@router.put(
    "/v1/ads/campaigns/{campaign_id}",
    tags=["ads"],
    responses={**_ADV, **error_responses(400, 409, 422)},
)
def put_campaign(
    request: Request,
    campaign_id: Annotated[str, PathParam(pattern=_ID, description="your id for the campaign")],
    body: CampaignSpec,
    advertiser: str = Depends(require_advertiser),
) -> dict[str, Any]:
    """Create or replace one of your campaigns. Targeting on special categories of personal data, on sensitive
    topics, or on minors is refused with a 422 naming the field."""
    return _ads(request).put_campaign(advertiser, campaign_id, body)


@router.get("/v1/ads/campaigns", tags=["ads"], responses=_ADV)
def list_campaigns(request: Request, advertiser: str = Depends(require_advertiser)) -> dict[str, Any]:
    return {"advertiser": advertiser, "campaigns": _ads(request).list_campaigns(advertiser)}


@router.get("/v1/ads/campaigns/{campaign_id}", tags=["ads"], responses={**_ADV, **error_responses(404)})
def get_campaign(request: Request, campaign_id: str, advertiser: str = Depends(require_advertiser)) -> dict[str, Any]:
    return _ads(request).campaign(advertiser, campaign_id)


@router.get("/v1/ads/reports", tags=["ads"], responses={**_ADV, **error_responses(422)})
def report(
    request: Request,
    advertiser: str = Depends(require_advertiser),
    since: Annotated[float | None, Query(ge=0, le=1e11, description="epoch seconds")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="epoch seconds")] = None,
) -> dict[str, Any]:
    """Impressions, reach, clicks, engagements, spend, CPM and CPC by campaign and day (UTC); no per-person data."""
    svc = _ads(request)
    return advertiser_report(svc, advertiser, since, until)


class AdSettingsIn(BaseModel):
    """A person's ad settings and the profile targeting may use (every field optional: absent = unchanged)."""

    model_config = ConfigDict(extra="forbid")
    personalised: StrictBool | None = Field(
        default=None, description="false: no ad based on profiling (interests, activity, age, lookalikes, lists)"
    )
    hidden_advertisers: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=1000, description="advertisers whose ads you never see (replaces the list)"
    )
    profile: ProfileIn | None = None


class ProfileIn(BaseModel):
    """What you declare about yourself for ads: country, region, languages and birth year (each optional)."""

    model_config = ConfigDict(extra="forbid")
    country: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")] | None = None
    region: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$")] | None = None
    languages: list[Annotated[StrictStr, Field(pattern=r"^[a-z]{2}$")]] | None = Field(default=None, max_length=20)
    birth_year: whole_number(1900, 2100) | None = None  # type: ignore[valid-type]


AdSettingsIn.model_rebuild()


@router.get("/v1/users/{user_id}/ads/settings", tags=["ads"], responses=error_responses(401, 403, 404))
def get_ad_settings(request: Request, user_id: str, _: int = Depends(require_user_or_service)) -> dict[str, Any]:
    return _ads(request).ad_settings(user_id)


@router.put("/v1/users/{user_id}/ads/settings", tags=["ads"], responses=error_responses(400, 401, 403, 404, 422))
def put_ad_settings(
    request: Request, user_id: str, body: AdSettingsIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Turn interest-based ads off or on, hide advertisers, declare your profile."""
    return _ads(request).save_ad_settings(
        user_id,
        personalised=body.personalised,
        hidden_advertisers=body.hidden_advertisers,
        profile=body.profile.model_dump() if body.profile is not None else None,
    )


class AdActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: StrictStr = Field(min_length=1, max_length=2000, description="the served ad's token")
    action: StrictStr = Field(description=f"one of {', '.join(ACTIONS)}", pattern="^(" + "|".join(ACTIONS) + ")$")


@router.post("/v1/users/{user_id}/ads/actions", tags=["ads"], responses=error_responses(400, 401, 403, 404, 422))
def ad_action(
    request: Request, user_id: str, body: AdActionIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """A click, engagement or hide on an ad you were shown (its token); a hide hides its advertiser for you."""
    return _ads(request).interact(user_id, body.token, body.action)


@router.get("/v1/ad-library", tags=["ads"], responses=error_responses(422))
def ad_library(
    request: Request,
    advertiser: Annotated[str | None, Query(max_length=200, description="part of the advertiser or payer")] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$", description="reached in this country")] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="shown at or after (epoch seconds)")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="shown before (epoch seconds)")] = None,
    political: Annotated[bool | None, Query(description="only political ads, or only others")] = None,
) -> dict[str, Any]:
    """The public ad repository (DSA Art. 39): every ad shown, its content, advertiser, payer, period, targeting
    and reach in bands (total and per country); no login."""
    return library(_ads(request), advertiser=advertiser, country=country, since=since, until=until, political=political)


@router.get(
    "/v1/ads/policy", tags=["ads"], response_class=PlainTextResponse, responses=json_error_responses(413, 422, 429)
)
def ad_policy(request: Request) -> str:
    """The ad policy's plain-language statement."""
    return describe(_ads(request).policy)


def install(app: FastAPI) -> None:
    """Build the AdService beside the app's FeedService (it places ads in the feed's pages) and add the routes."""
    app.state.ads = AdService(app.state.feed)
    app.include_router(router)


__all__ = ["install", "require_advertiser", "router"]
