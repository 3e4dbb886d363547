"""Pydantic models at the HTTP edge: request/response shapes, also used to document the OpenAPI schema.

Event batches are parsed with orjson and validated by the Ingestor (fast); ``EventIn`` documents their shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from glassfeed.domain import KIND_NAMES


class EventIn(BaseModel):
    """One engagement or graph event on the wire."""

    kind: str = Field(description=f"one of: {', '.join(KIND_NAMES)}")
    user: str = Field(description="external id of the acting user")
    post: str | None = Field(None, description="target post id (post kinds)")
    target_user: str | None = Field(None, description="target user id (follow/mute/block...)")
    ts: float | str | None = Field(None, description="epoch seconds or ISO 8601 with timezone; default now")
    id: str | None = Field(None, description="client idempotency key; re-sending it changes nothing")
    value: float | None = Field(None, description="dwell time in ms (required for dwell)")
    surface: str | None = None
    position: int | None = None
    request_id: str | None = None


class UserIn(BaseModel):
    id: str
    handle: str | None = None
    created_at: float | str | None = None
    interests: list[str] = Field(default_factory=list, description="onboarding topics (cold start)")
    community: int | None = None


class PostIn(BaseModel):
    id: str | None = Field(None, description="external id; generated when absent")
    author: str
    text: str = ""
    created_at: float | str | None = None
    reply_to: str | None = None
    repost_of: str | None = None
    quote_of: str | None = None
    topics: list[str] = Field(default_factory=list)
    lang: str = "en"
    labels: list[str] = Field(default_factory=list)
    quality: float | None = None
    divisiveness: float | None = None


class FollowIn(BaseModel):
    user: str
    target: str
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


class UserOut(BaseModel):
    id: str
    idx: int
    handle: str
    created_at: float
    community: int | None
    interests: list[str]
    events: int
    following: int
    followers: int
    posts: int


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


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": desc}
    for code, desc in ((400, "malformed JSON"), (401, "missing or invalid API key"), (404, "unknown id"),
                       (409, "duplicate entity id"), (413, "batch too large"), (422, "invalid items"))
}


def batch_body_schema(model: type[BaseModel], key: str, max_items: int) -> dict[str, Any]:
    """OpenAPI requestBody for a body that is one item, a list of items, or ``{key: [items]}``."""
    item = model.model_json_schema()
    arr = {"type": "array", "items": item, "maxItems": max_items}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [arr, {"type": "object", "properties": {key: arr}, "required": [key]}, item]}}}}}
