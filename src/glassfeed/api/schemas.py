"""Pydantic models at the HTTP edge: request/response shapes, also used to document the OpenAPI schema.

Event batches are parsed with orjson and validated by the Ingestor (fast); ``EventIn``, generated from the event
specification (``glassfeed.domain.spec``) and the packaged ``[ingest]`` limits, documents their shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from glassfeed.domain import EVENT_FIELDS, KIND_NAMES, KIND_RULES, Target, WireType
from glassfeed.domain.spec import Bound
from glassfeed.settings import IngestLimits, packaged_settings

#: The Python (so JSON schema) type of each wire type.
_WIRE_PYTHON: dict[WireType, Any] = {
    WireType.KIND: Literal.__getitem__(KIND_NAMES),
    WireType.USER: str,
    WireType.POST: str,
    WireType.TIME: float | str,
    WireType.NUMBER: float,
    WireType.INTEGER: int,
    WireType.STRING: str,
}


def event_model(limits: IngestLimits) -> type[BaseModel]:
    """The pydantic model of one wire event: a field per ``EVENT_FIELDS`` entry (with its description and, where
    ``limits`` bound it, its JSON schema bounds); other fields are refused."""
    fields: dict[str, Any] = {}
    for f in EVENT_FIELDS:
        lim = getattr(limits, f.limit) if f.limit else None
        kw: dict[str, Any] = {"description": f.description}
        if f.bound is Bound.CHARS:
            kw.update(max_length=lim, min_length=1 if f.nonempty else None)
        elif f.bound is Bound.AT_MOST:
            kw.update(ge=0, le=lim)
        elif f.bound is Bound.BELOW:
            kw.update(ge=0, lt=lim)
        elif f.bound is Bound.FUTURE_SKEW:
            kw["description"] += f" (at most {lim:.0f} s ahead of the server's clock)"
        if f.reserved_prefix:
            kw["description"] += f"; may not start with {f.reserved_prefix!r}"
        typ = _WIRE_PYTHON[f.type]
        fields[f.name] = (typ, Field(**kw)) if f.required else (typ | None, Field(None, **kw))
    return create_model("EventIn", __config__=ConfigDict(extra="forbid"), __doc__=_event_doc(), **fields)


def _event_doc() -> str:
    """The model's description: what each kind needs, from ``KIND_RULES``."""
    needs = {Target.POST: "post", Target.USER: "target_user", Target.POST_OR_USER: "post or target_user"}
    parts = [f"{needs[t]} for {', '.join(k.wire for k, r in KIND_RULES.items() if r.target is t)}" for t in Target]
    parts += [f"{name} for {k.wire}" for k, r in KIND_RULES.items() for name in r.requires]
    return "One engagement or graph event on the wire. Required beyond kind and user: " + "; ".join(parts) + "."


_LIMITS = packaged_settings().ingest  # the documented defaults; the Ingestor checks the live ones
EventIn = event_model(_LIMITS)
#: An event a person sends about themself (``POST /v1/users/{user_id}/events``): ``user`` may be omitted.
OwnEventIn = create_model(
    "OwnEventIn",
    __base__=EventIn,
    user=(str | None, Field(None, description="the path's user (or omitted); another user is refused (403)")),
)
_ID_DOC = "no surrounding spaces; no control, zero-width or bidi-override characters"
_NAMES: dict[str, Any] = {
    "max_length": _LIMITS.max_list_items,
    "json_schema_extra": {"items": {"type": "string", "minLength": 1, "maxLength": _LIMITS.max_topic_chars}},
}


class UserIn(BaseModel):
    id: str = Field(min_length=1, max_length=_LIMITS.max_id_chars, description=_ID_DOC)
    handle: str | None = Field(None, max_length=_LIMITS.max_id_chars, description="display handle; default the id")
    created_at: float | str | None = None
    interests: list[str] = Field(default_factory=list, description="onboarding topics (cold start)", **_NAMES)
    community: int | None = Field(None, ge=0, lt=_LIMITS.max_community)


class PostIn(BaseModel):
    id: str | None = Field(
        None, max_length=_LIMITS.max_id_chars, description=f"external id; generated when absent; {_ID_DOC}"
    )
    author: str = Field(min_length=1, description="an existing user id")
    text: str = Field("", max_length=_LIMITS.max_text_chars)
    created_at: float | str | None = None
    reply_to: str | None = None
    repost_of: str | None = None
    quote_of: str | None = None
    topics: list[str] = Field(default_factory=list, description="topic names without commas", **_NAMES)
    lang: str = Field("en", max_length=_LIMITS.max_lang_chars)
    labels: list[str] = Field(default_factory=list, description="label names without commas", **_NAMES)
    quality: float | None = Field(None, ge=0, le=1)
    divisiveness: float | None = Field(None, ge=0, le=1)


class FollowIn(BaseModel):
    user: str = Field(min_length=1)
    target: str = Field(min_length=1)
    ts: float | str | None = None
    id: str | None = None


class CreatedUser(BaseModel):
    id: str
    idx: int
    token: str | None = Field(None, description="the user's read token, shown once (only its hash is stored)")


class UsersOut(BaseModel):
    users: list[CreatedUser]


class CreatedPost(BaseModel):
    id: str
    idx: int


class PostsOut(BaseModel):
    posts: list[CreatedPost]


class EventsOut(BaseModel):
    accepted: int
    duplicates: int
    ids: list[str]
    first_seq: int
    last_seq: int


class StatsOut(BaseModel):
    users: int
    posts: int
    events: int
    follows: int
    max_seq: int
    schema_version: int


class ErrorItem(BaseModel):
    index: int = Field(description="position of the bad item in the batch; -1 for the whole request")
    field: str
    reason: str


class ErrorOut(BaseModel):
    error: str
    detail: list[ErrorItem]


#: Every error status the API answers, documented with the project's error body.
_ERROR_DOCS: dict[int, str] = {
    400: "malformed request (bad JSON, empty body, bad cursor or unknown policy)",
    401: "missing or invalid API key or user token",
    403: "the token's user may not act for another user",
    404: "unknown id",
    409: "duplicate entity id, or a state of the data that forbids it (e.g. too little history to train)",
    413: "body or batch too large",
    422: "invalid request (one detail per problem)",
    429: "too many anonymous requests (see Retry-After)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``codes``, each with the ``ErrorOut`` body."""
    return {code: {"model": ErrorOut, "description": _ERROR_DOCS[code]} for code in codes}


def json_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Like ``error_responses``, for a route whose own answer is not JSON (FastAPI would document the error
    bodies under the route's media type): the ``ErrorOut`` body under ``application/json``."""
    schema = {"$ref": "#/components/schemas/ErrorOut"}  # registered by the routes that use error_responses
    return {c: {"description": _ERROR_DOCS[c], "content": {"application/json": {"schema": schema}}} for c in codes}


#: The errors of the write endpoints (ingest).
ERROR_RESPONSES = error_responses(400, 401, 404, 409, 413, 422)
#: Documented on every operation (set on the app): FastAPI would otherwise document its ``HTTPValidationError``
#: for 422, while ``api.errors.validation_error`` answers ``ErrorOut``; any body may pass ``[api] max_body_bytes``.
APP_RESPONSES = error_responses(413, 422)


def batch_body_schema(model: type[BaseModel], key: str, max_items: int) -> dict[str, Any]:
    """OpenAPI requestBody for a body that is one item, a list of items, or ``{key: [items]}``."""
    item = model.model_json_schema()
    arr = {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}  # [] is refused (422)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [arr, {"type": "object", "properties": {key: arr}, "required": [key]}, item]}
                }
            },
        }
    }
