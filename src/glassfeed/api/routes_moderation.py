"""Moderation routes: notices (anyone), reports, statements of reasons and appeals (the person concerned),
community notes (people), the review queue, decisions and appeal decisions (moderator keys only), the policy
and the transparency report (public). ``install(app)`` builds the ModerationService beside the FeedService."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from glassfeed.api.auth import named_key, presented_key, require_user_or_service
from glassfeed.api.routes_feed import JsonBodyRoute
from glassfeed.api.schemas import WholeNumber, error_responses, json_error_responses
from glassfeed.moderation.notes import RATING_LABELS
from glassfeed.moderation.policy import load_moderation_policy
from glassfeed.moderation.report import report_html
from glassfeed.moderation.service import (
    EMAIL_PATTERN,
    TEXT_PATTERN,
    ModerationError,
    ModerationService,
    attach_classifiers,
)

router = APIRouter(route_class=JsonBodyRoute)
_STRICT = ConfigDict(extra="forbid")


def _mod(request: Request) -> ModerationService:
    return request.app.state.moderation


def require_moderator(request: Request) -> str:
    """Dependency of the moderation console's API: a moderator key (``[moderation] moderator_keys``); returns the
    moderator's name. The service key and people's tokens are not moderator keys."""
    return named_key(request, request.app.state.settings.moderation.moderator_keys, "moderator")


#: The packaged policy, for the documented shapes (categories, lengths); the live one checks every request.
_POLICY = load_moderation_policy()
_CATEGORIES = list(_POLICY.categories)
_ILLEGAL = [k for k, c in _POLICY.categories.items() if c.illegal]
#: Free text with something besides spaces in it, at most the policy's length.
_Text = Annotated[StrictStr, Field(pattern=TEXT_PATTERN, max_length=_POLICY.max_text_chars)]
_Name = Annotated[StrictStr, Field(pattern=TEXT_PATTERN, max_length=_POLICY.max_name_chars)]


class NoticeIn(BaseModel):
    """A notice of illegal content (DSA Art. 16(2)): every field is required; the server names each one missing."""

    model_config = _STRICT
    location: _Text = Field(description="the post's id or its URL")
    category: Literal[tuple(_ILLEGAL)] = Field(description="what the content is (an illegal category)")  # type: ignore[valid-type]
    explanation: _Text = Field(description="why it is illegal")
    notifier_name: _Name
    notifier_email: StrictStr = Field(pattern=EMAIL_PATTERN, max_length=_POLICY.max_name_chars)
    good_faith: Literal[True] = Field(description="the notice is accurate and complete, in good faith")


class ReportIn(BaseModel):
    """A report of a post or an account (exactly one) against the terms."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["post"], "properties": {"post": {"type": "string"}, "account": {"type": "null"}}},
                {"required": ["account"], "properties": {"account": {"type": "string"}, "post": {"type": "null"}}},
            ]
        },
    )
    post: StrictStr | None = None
    account: StrictStr | None = None
    category: Literal[tuple(_CATEGORIES)]  # type: ignore[valid-type]
    text: StrictStr | None = Field(None, max_length=_POLICY.max_text_chars)


class DecisionIn(BaseModel):
    model_config = _STRICT
    post: StrictStr | None = None
    account: StrictStr | None = None
    action: StrictStr | None = None
    surfaces: list[StrictStr] | None = None
    factor: StrictFloat | StrictInt | None = None
    ground: StrictStr | None = None
    grounds_explanation: StrictStr | None = None
    category: StrictStr | None = None
    facts: StrictStr | None = None
    territorial_scope: list[StrictStr] | None = None
    cases: list[WholeNumber] | None = None


class DecisionsIn(BaseModel):
    model_config = _STRICT
    decisions: list[DecisionIn]


class AppealIn(BaseModel):
    model_config = _STRICT
    text: _Text = Field(description="why the decision is wrong")


class AppealDecisionIn(BaseModel):
    model_config = _STRICT
    outcome: StrictStr | None = None
    explanation: StrictStr | None = None


class NoteIn(BaseModel):
    model_config = _STRICT
    post: StrictStr
    text: _Text


class RatingIn(BaseModel):
    model_config = _STRICT
    value: Literal[tuple(RATING_LABELS)]  # type: ignore[valid-type]


def _given(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_none=True)


def _notice_token(request: Request) -> str:
    key = presented_key(request)
    if key is None:
        raise HTTPException(401, "send the token your notice returned ('Authorization: Bearer <token>')")
    return key


_ERR = error_responses(400, 401, 403, 404, 409, 422)


# ---------------------------------------------------------------------------------------------- public
@router.post("/v1/notices", tags=["moderation"], status_code=201, responses=error_responses(400, 404, 422, 429))
def file_notice(request: Request, body: NoticeIn) -> dict[str, Any]:
    """Notify illegal content (DSA Art. 16), with or without an account. The answer's token (shown once) lets
    you follow the notice, read the decision's statement of reasons and appeal it."""
    return _mod(request).file_notice(_given(body))


@router.get("/v1/notices/{notice}", tags=["moderation"], responses=_ERR)
def notice_status(request: Request, notice: int) -> dict[str, Any]:
    """A notice's status and the statements of reasons of the decisions that resolved it (the notice's token)."""
    return _mod(request).notice_status(notice, _notice_token(request))


@router.post("/v1/notices/{notice}/appeals", tags=["moderation"], status_code=201, responses=_ERR)
def notice_appeal(request: Request, notice: int, body: AppealIn) -> dict[str, Any]:
    """Contest the decision on your notice (the notice's token), within the appeal window."""
    svc = _mod(request)
    token = _notice_token(request)
    seq = svc.notice_decision(notice, token)
    return svc.appeal(seq, body.text, notice_token=token)


@router.get(
    "/v1/moderation/policy",
    tags=["moderation"],
    response_class=PlainTextResponse,
    responses=json_error_responses(413, 422, 429),
)
def moderation_policy(request: Request) -> str:
    """The moderation policy in plain language: categories, automated rules per surface, queue, appeals."""
    return _mod(request).policy.describe()


#: What a period's ends look like: an ISO 8601 date, optionally with a time.
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"


def _period(t_from: str, t_to: str) -> tuple[float, float]:
    out = []
    for name, v in (("from", t_from), ("to", t_to)):
        try:
            out.append(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp())
        except ValueError:
            raise ModerationError(name, "must be an ISO 8601 date or time") from None
    return out[0], out[1]


@router.get("/v1/transparency", tags=["moderation"], responses=error_responses(422))
def transparency(
    request: Request,
    t_from: str = Query(..., alias="from", pattern=_DATE, description="start (ISO 8601 date or time, inclusive)"),
    t_to: str = Query(..., alias="to", pattern=_DATE, description="end (ISO 8601, exclusive)"),
) -> dict[str, Any]:
    """The transparency report (DSA Art. 15/24) for a period: notices, actions, automation, appeals."""
    return _mod(request).transparency(*_period(t_from, t_to))


@router.get(
    "/v1/transparency.html",
    tags=["moderation"],
    response_class=HTMLResponse,
    responses=json_error_responses(413, 422, 429),
)
def transparency_html(
    request: Request,
    t_from: str = Query(..., alias="from", pattern=_DATE),
    t_to: str = Query(..., alias="to", pattern=_DATE),
) -> str:
    return report_html(_mod(request).transparency(*_period(t_from, t_to)))


@router.get("/v1/posts/{post_id}/notes", tags=["community notes"], responses=error_responses(404))
def post_notes(request: Request, post_id: str) -> dict[str, Any]:
    """A post's community notes, each with its status from the bridging model and why."""
    return {"post": post_id, "notes": _mod(request).notes_for(post_id)}


# ---------------------------------------------------------------------------------------------- people
@router.post("/v1/users/{user_id}/reports", tags=["moderation"], status_code=201, responses=_ERR)
def report(
    request: Request, user_id: str, body: ReportIn, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Report a post or an account (the reporter stops seeing the post at once)."""
    return _mod(request).report(idx, _given(body))


@router.get("/v1/users/{user_id}/statements", tags=["moderation"], responses=_ERR)
def my_statements(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    """The statements of reasons about your posts and account (DSA Art. 17), newest first."""
    return {"user": user_id, "statements": _mod(request).statements_about(idx)}


@router.get("/v1/users/{user_id}/statements/{statement}", tags=["moderation"], responses=_ERR)
def my_statement(
    request: Request, user_id: str, statement: int, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    svc = _mod(request)
    if not svc.can_read(statement, user=idx):
        raise ModerationError("statement", "not a statement about you or your report", 403)
    return svc.statement(statement)


@router.post("/v1/users/{user_id}/statements/{statement}/appeals", tags=["moderation"], status_code=201, responses=_ERR)
def my_appeal(
    request: Request, user_id: str, statement: int, body: AppealIn, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Contest a decision about your post or your report (DSA Art. 20), within the appeal window."""
    return _mod(request).appeal(statement, body.text, user=idx)


@router.post("/v1/users/{user_id}/notes", tags=["community notes"], status_code=201, responses=_ERR)
def write_note(
    request: Request, user_id: str, body: NoteIn, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    return _mod(request).add_note(idx, body.post, body.text)


@router.post("/v1/users/{user_id}/notes/{note}/ratings", tags=["community notes"], status_code=201, responses=_ERR)
def rate_note(
    request: Request, user_id: str, note: int, body: RatingIn, idx: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    return _mod(request).rate_note(idx, note, body.value)


# ---------------------------------------------------------------------------------------------- moderators
@router.get("/v1/moderation/queue", tags=["moderation console"], responses=_ERR)
def queue(
    request: Request, limit: int | None = Query(None, ge=1, le=10000), me: str = Depends(require_moderator)
) -> dict[str, Any]:
    """Open cases, trusted flaggers' first, then by severity x expected reach."""
    return {"moderator": me, "cases": _mod(request).queue(limit)}


@router.post("/v1/moderation/decisions", tags=["moderation console"], status_code=201, responses=_ERR)
def decide(request: Request, body: DecisionsIn, me: str = Depends(require_moderator)) -> dict[str, Any]:
    """Decide one or many cases (all or none); each decision returns its statement of reasons."""
    return {"statements": _mod(request).decide(me, [_given(d) for d in body.decisions])}


@router.get("/v1/moderation/statements/{statement}", tags=["moderation console"], responses=_ERR)
def statement(request: Request, statement: int, _: str = Depends(require_moderator)) -> dict[str, Any]:
    return _mod(request).statement(statement)


@router.get("/v1/moderation/appeals", tags=["moderation console"], responses=_ERR)
def appeals(request: Request, me: str = Depends(require_moderator)) -> dict[str, Any]:
    """Open appeals, oldest first; each says whether you may decide it (not the moderator who decided)."""
    return {"moderator": me, "appeals": _mod(request).appeals_queue(me)}


@router.post("/v1/moderation/appeals/{appeal}/decision", tags=["moderation console"], responses=_ERR)
def decide_appeal(
    request: Request, appeal: int, body: AppealDecisionIn, me: str = Depends(require_moderator)
) -> dict[str, Any]:
    return _mod(request).decide_appeal(me, appeal, _given(body))


@router.get("/v1/moderation/log", tags=["moderation console"], responses=_ERR)
def audit_log(
    request: Request,
    since: int = Query(0, ge=0, le=10**15),
    limit: int = Query(200, ge=1, le=10000),
    _: str = Depends(require_moderator),
) -> dict[str, Any]:
    """The audit log: every moderation record after ``since``, oldest first."""
    return {"records": _mod(request).log(since, limit)}


def install(app: FastAPI) -> None:
    """Build the ModerationService beside the app's FeedService and add the moderation routes. The feed's state
    rebuilds and tailing keep the moderation outcome installed in whichever serving state is live."""
    feed = app.state.feed
    settings = app.state.settings.moderation
    folder = Path(settings.classifiers) if settings.classifiers else feed.models_folder / "classifiers"
    app.state.classifiers = attach_classifiers(app.state.ingestor, folder)
    svc = ModerationService(app.state.ingestor, app.state.settings, state_of=lambda: feed.state, state_lock=feed.lock)
    feed.state_listeners.append(svc.install_into)
    feed.tail_listeners.append(svc.catch_up)
    app.state.moderation = svc
    app.include_router(router)
