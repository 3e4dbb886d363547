"""Notification routes: the inbox (list, unread count, mark read), "why did I get this?", a person's notification
settings within the policy's bounds, Web Push subscriptions (the server's VAPID public key; subscribe and
unsubscribe), and the policies in plain language.
``install(app)`` builds the NotificationService beside the FeedService."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from glassfeed.api.auth import require_user_or_service
from glassfeed.api.routes_feed import JsonBodyRoute
from glassfeed.api.schemas import error_responses, json_error_responses, whole_number
from glassfeed.ingest import IngestError, ItemError
from glassfeed.notifications.delivery import webpush
from glassfeed.notifications.policy import KINDS, TIME_OF_DAY
from glassfeed.notifications.service import NotificationError, NotificationService
from glassfeed.notifications.worker import vapid_keys

router = APIRouter(route_class=JsonBodyRoute)
_STRICT = ConfigDict(extra="forbid")
_ERR = error_responses(400, 401, 404, 422)
#: The largest id a route accepts (a larger number is refused with a 422). Below 2^53, so that a JSON number at the
#: bound means the same to a client reading it as a float.
MAX_ID = 10**15
_ID = Path(ge=1, le=MAX_ID, description="a notification's id")
_Id = whole_number(1, MAX_ID)


def _svc(request: Request) -> NotificationService:
    return request.app.state.notifications


class ReadIn(BaseModel):
    model_config = _STRICT
    ids: list[_Id] | None = Field(None, max_length=1000)  # type: ignore[valid-type]  # absent: all


_HHMM = Annotated[StrictStr, Field(pattern=TIME_OF_DAY.pattern)]
_KIND = Literal[KINDS]  # type: ignore[valid-type]


class SettingsIn(BaseModel):
    """A person's notification settings; each is checked against the chosen policy's bounds (which differ by
    policy: the schema gives the widest)."""

    model_config = _STRICT
    policy: StrictStr | None = None
    kinds_off: list[_KIND] | None = None
    kinds_on: list[_KIND] | None = None
    daily_cap: whole_number(0) | None = None  # type: ignore[valid-type]
    digest_times: list[_HHMM] | None = Field(None, min_length=1)
    quiet_start: _HHMM | None = None
    quiet_end: _HHMM | None = None
    time_zone: StrictStr | None = Field(None, max_length=64, description="an IANA time zone, e.g. Europe/Paris")
    push_threshold: StrictFloat | StrictInt | None = Field(None, ge=0.0, le=1.0)


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")
    p256dh: StrictStr = Field(pattern=r"^[A-Za-z0-9_-]{86,88}={0,2}$", description="the browser's P-256 key")
    auth: StrictStr = Field(pattern=r"^[A-Za-z0-9_-]{22,24}={0,2}$", description="its 16-byte auth secret")


class SubscriptionIn(BaseModel):
    """A browser's ``PushSubscription.toJSON()``: the endpoint (https) and its keys."""

    model_config = ConfigDict(extra="ignore")  # toJSON() also sends expirationTime
    endpoint: StrictStr = Field(pattern=r"^https://", max_length=2048)
    keys: SubscriptionKeys


@router.get("/v1/users/{user_id}/notifications", tags=["notifications"], responses=_ERR)
def inbox(
    request: Request, user_id: str, limit: int = Query(50, ge=1, le=500), _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """The person's notifications, newest first, with the unread count (every notification is here as soon as it
    exists; the policy decides what is pushed and when)."""
    return _svc(request).inbox(user_id, limit)


@router.post("/v1/users/{user_id}/notifications/read", tags=["notifications"], responses=_ERR)
def mark_read(
    request: Request, user_id: str, body: ReadIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    return _svc(request).mark_read(user_id, body.ids)


@router.get("/v1/users/{user_id}/notifications/{nid}/why", tags=["notifications"], responses=_ERR)
def why(request: Request, user_id: str, nid: int = _ID, _: int = Depends(require_user_or_service)) -> dict[str, Any]:
    """Why you got this: its source events, P(open), the rule that let it through or held it, how to turn it off."""
    return _svc(request).why(user_id, nid)


@router.get("/v1/users/{user_id}/notification-settings", tags=["notifications"], responses=_ERR)
def get_settings(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    return _svc(request).describe_settings(idx)


@router.put("/v1/users/{user_id}/notification-settings", tags=["notifications"], responses=_ERR)
def put_settings(
    request: Request, user_id: str, body: SettingsIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Replace your notification settings (policy, kinds, cap, digest times, quiet hours, time zone)."""
    return _svc(request).save_settings(user_id, body.model_dump(exclude_none=True))


@router.get("/v1/notifications/vapid-public-key", tags=["notifications"])
def vapid_public_key(request: Request) -> dict[str, str]:
    """The ``applicationServerKey`` a browser subscribes to Web Push with."""
    svc = _svc(request)
    try:
        return {"key": vapid_keys(svc.settings, svc.store.path).public_key_b64}
    except ValueError as e:  # a server store with no [notifications] vapid_key
        raise NotificationError("vapid_key", f"Web Push is not set up on this server: {e}", 409) from None


@router.post("/v1/users/{user_id}/push-subscriptions", tags=["notifications"], status_code=201, responses=_ERR)
def subscribe(
    request: Request, user_id: str, body: SubscriptionIn, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    try:
        sub = webpush.Subscription(body.endpoint, body.keys.p256dh, body.keys.auth)
    except ValueError as e:
        raise IngestError([ItemError(0, "endpoint" if "endpoint" in str(e) else "keys", str(e))]) from None
    store = _svc(request).store
    with store.transaction() as tx:
        store.set_push_subscription(tx, idx, sub.endpoint, sub.p256dh, sub.auth)
    return {"subscribed": sub.endpoint}


@router.get("/v1/users/{user_id}/push-subscriptions", tags=["notifications"], responses=_ERR)
def subscriptions(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    """Your Web Push subscriptions (one per browser that turned push on): their endpoints."""
    return {"subscriptions": [{"endpoint": e} for e, _, _ in _svc(request).store.push_subscriptions(idx)]}


class UnsubscribeIn(BaseModel):
    """The subscription to forget: its endpoint (a browser may send its whole ``PushSubscription.toJSON()``)."""

    model_config = ConfigDict(extra="ignore")
    endpoint: StrictStr = Field(pattern=r"^https://", max_length=2048)


@router.delete("/v1/users/{user_id}/push-subscriptions", tags=["notifications"], responses=_ERR)
def unsubscribe(
    request: Request, user_id: str, body: UnsubscribeIn, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Forget one of your Web Push subscriptions (the browser unsubscribed, or you turned push off there): nothing
    more is pushed to it. 404 when it is not one of yours."""
    store = _svc(request).store
    if body.endpoint not in {e for e, _, _ in store.push_subscriptions(idx)}:
        raise NotificationError("endpoint", "no such push subscription of yours", 404)
    with store.transaction() as tx:
        store.delete_push_subscription(tx, body.endpoint)
    return {"unsubscribed": body.endpoint}


@router.get("/v1/notification-policies", tags=["notifications"])
def policies(request: Request) -> dict[str, Any]:
    return {
        "default": _svc(request).settings.default_policy,
        "policies": [{"name": p.name, "title": p.title, "summary": p.summary} for p in _svc(request).policies.values()],
    }


@router.get(
    "/v1/notification-policies/{name}",
    tags=["notifications"],
    response_class=PlainTextResponse,
    responses=json_error_responses(404, 413, 422, 429),
)
def policy_statement(request: Request, name: str) -> str:
    """The policy in plain language: what is pushed, when, and what you can change."""
    pol = _svc(request).policies.get(name)
    if pol is None:
        raise NotificationError("name", f"unknown notification policy {name!r}", 404)
    return pol.describe()


def install(app: FastAPI) -> None:
    """Build the NotificationService beside the FeedService and add the notification routes."""
    app.state.notifications = NotificationService(app.state.feed, app.state.settings)
    app.include_router(router)
