"""Pydantic models at the HTTP edge: request/response shapes, also used to document the OpenAPI schema.

Event batches are parsed with orjson and validated by the Ingestor (fast); ``EventIn``, generated from the event
specification (``glassfeed.domain.spec``) and the packaged ``[ingest]`` limits, documents their shape.
"""

from __future__ import annotations

import copy
import re
import sys
import unicodedata
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from glassfeed.domain import EVENT_FIELDS, KIND_NAMES, KIND_RULES, Target, WireType
from glassfeed.domain.spec import UNSAFE_CATEGORIES, Bound
from glassfeed.settings import IngestLimits, packaged_settings

#: Planes holding every character of ``UNSAFE_CATEGORIES`` and every whitespace character (0: BMP, 1: SMP, 14:
#: tags and variation selectors); the others hold only letters, private use or nothing. Scanning these keeps the
#: import fast (~40 ms instead of ~270 ms for all of Unicode).
_PLANES = (range(0x20000), range(0xE0000, min(0xF0000, sys.maxunicode + 1)))


def _class_body(codepoints: list[int]) -> str:
    """The inside of a regex character class holding exactly ``codepoints``, as ranges: BMP characters as
    ``\\uXXXX`` escapes (understood by ECMA-262, which JSON Schema names, Python's ``re`` and Rust's ``regex``),
    others as the literal character."""
    out: list[str] = []
    cps = sorted(codepoints)
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = (chr(c) if c > 0xFFFF else f"\\u{c:04x}" for c in (cps[i], cps[j]))
        out.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "".join(out)


@cache
def string_patterns() -> dict[str, str]:
    """JSON-schema ``pattern`` of the server's string rules (``domain.spec.has_unsafe_chars`` and the id rule):

    - ``plain``: no character of ``UNSAFE_CATEGORIES`` (control, format/zero-width/bidi, separators);
    - ``id``: plain, non-empty, no whitespace at either end (ids and references to them); ``id_or_empty``
      also allows ``""`` (a post id the server generates);
    - ``name``: plain, non-empty, no comma (topic and label names).
    """
    # Surrogates (Cs) are left out: a JSON body cannot carry a lone one (the parser refuses it, 400), and Rust's
    # regex engine, which validators such as jsonschema-rs use, cannot express them.
    unsafe = [c for plane in _PLANES for c in plane if unicodedata.category(chr(c)) in UNSAFE_CATEGORIES - {"Cs"}]
    space = [c for plane in _PLANES for c in plane if chr(c).isspace()]
    bad, edge = _class_body(unsafe), _class_body(sorted(set(unsafe) | set(space)))
    ident = f"[^{edge}](?:[^{bad}]*[^{edge}])?"
    return {
        "plain": f"^[^{bad}]*$",
        "id": f"^{ident}$",
        "id_or_empty": f"^(?:{ident})?$",
        "name": f"^[^,{bad}]+$",
    }


def _str(kind: str, **schema: Any) -> dict[str, Any]:
    """A string schema following the ``kind`` rule of ``string_patterns``."""
    return {"type": "string", "pattern": string_patterns()[kind], **schema}


#: A time on the wire: epoch seconds or an ISO 8601 / RFC 3339 date-time with a timezone (not before 1970).
TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "format": "date-time"}, {"type": "null"}]
}
_Time = Annotated[float | str | None, WithJsonSchema(TIME_SCHEMA)]

#: The Python (so JSON schema) type of each wire type.
_WIRE_PYTHON: dict[WireType, Any] = {
    WireType.KIND: Literal.__getitem__(KIND_NAMES),
    WireType.USER: str,
    WireType.POST: str,
    WireType.TIME: Annotated[float | str, WithJsonSchema(TIME_SCHEMA)],
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
        if f.type in (WireType.USER, WireType.POST):
            kw["json_schema_extra"] = {"pattern": string_patterns()["id"]}
        elif f.plain:
            body = string_patterns()["plain"][1:]  # without its leading ^
            ahead = f"(?!{re.escape(f.reserved_prefix)})" if f.reserved_prefix else ""
            kw["json_schema_extra"] = {"pattern": f"^{ahead}{body}"}
        typ = _WIRE_PYTHON[f.type]
        fields[f.name] = (typ, Field(**kw)) if f.required else (typ | None, Field(None, **kw))
    return create_model("EventIn", __config__=ConfigDict(extra="forbid"), __doc__=_event_doc(), **fields)


def whole_number(lo: int | None = None, hi: int | None = None) -> Any:
    """A JSON integer within ``[lo, hi]``: an int, or a number with no fraction (``14.0`` is an integer in JSON
    Schema); not a bool or a string. Documented as exactly that ``integer`` schema."""

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | float) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError("must be a whole number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"must be from {lo} to {hi}" if hi is not None else f"must be at least {lo}")
        return int(v)

    schema: dict[str, Any] = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return Annotated[int, BeforeValidator(check), WithJsonSchema(schema)]


#: A whole number as JSON Schema's ``integer`` means it (for request bodies).
WholeNumber = whole_number()


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's schema without its ``null`` alternative (and default): for a field a kind requires."""
    alts = [a for a in prop.get("anyOf", [prop]) if a.get("type") != "null"]
    outer = {k: x for k, x in prop.items() if k not in ("anyOf", "default")}
    return outer | (alts[0] if len(alts) == 1 else {"anyOf": alts}) if "anyOf" in prop else outer


def event_item_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of one event as the server checks it: one alternative per kind (``KIND_RULES``), each
    naming the target and the fields that kind requires, so that a schema-valid event is never refused for a
    missing field (a generated client can tell a ``like`` needs a ``post``)."""
    base = model.model_json_schema()
    variants: list[dict[str, Any]] = []
    for kind, rule in KIND_RULES.items():
        v = copy.deepcopy(base)
        v["title"] = f"{base.get('title', 'Event')} ({kind.wire})"
        v["properties"]["kind"] = {"const": kind.wire, "description": "the event kind"}
        needs = {Target.POST: ["post"], Target.USER: ["target_user"], Target.POST_OR_USER: [], Target.REQUEST: []}[
            rule.target
        ]
        v["required"] = sorted({*base.get("required", []), "kind", *needs, *rule.requires})
        for name in (*needs, *rule.requires):  # required means present and not null
            v["properties"][name] = _not_null(v["properties"][name])
        if rule.value_range is not None:  # the kind's own bounds on value
            lo, hi = rule.value_range
            v["properties"]["value"] = {**_not_null(v["properties"]["value"]), "minimum": lo, "maximum": hi}
        if rule.target is Target.POST_OR_USER:
            v["anyOf"] = [
                {"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in ("post", "target_user")
            ]
        variants.append(v)
    return {"oneOf": variants, "description": base.get("description", "")}


def _event_doc() -> str:
    """The model's description: what each kind needs, from ``KIND_RULES``."""
    needs = {
        Target.POST: "post",
        Target.USER: "target_user",
        Target.POST_OR_USER: "post or target_user",
        Target.REQUEST: "request_id",
    }
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
    "json_schema_extra": {"items": _str("name", maxLength=_LIMITS.max_topic_chars)},
}
_ID: dict[str, Any] = {"json_schema_extra": {"pattern": string_patterns()["id"]}}
_REF: dict[str, Any] = {"description": "an existing post id", **_ID}
_TIME_DOC = "epoch seconds or ISO 8601 with timezone; default now; at most [ingest] max_future_skew_s ahead"


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=_LIMITS.max_id_chars, description=_ID_DOC, **_ID)
    handle: str | None = Field(
        None,
        max_length=_LIMITS.max_id_chars,
        description="display handle; default the id (also when empty)",
        json_schema_extra={"pattern": string_patterns()["plain"]},
    )
    created_at: _Time = Field(None, description=_TIME_DOC)
    interests: list[str] | None = Field(None, description="onboarding topics (cold start)", **_NAMES)
    community: int | None = Field(None, ge=0, lt=_LIMITS.max_community)


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None,
        max_length=_LIMITS.max_id_chars,
        description=f"external id; generated when absent or empty; {_ID_DOC}",
        json_schema_extra={"pattern": string_patterns()["id_or_empty"]},
    )
    author: str = Field(min_length=1, description="an existing user id", **_ID)
    text: str = Field("", max_length=_LIMITS.max_text_chars)
    created_at: _Time = Field(None, description=_TIME_DOC)
    reply_to: str | None = Field(None, **_REF)
    repost_of: str | None = Field(None, **_REF)
    quote_of: str | None = Field(None, **_REF)
    topics: list[str] | None = Field(None, description="topic names without commas", **_NAMES)
    lang: str | None = Field(
        None,
        max_length=_LIMITS.max_lang_chars,
        description="language tag; default en (also when empty)",
        json_schema_extra={"pattern": string_patterns()["plain"]},
    )
    labels: list[str] | None = Field(None, description="label names without commas", **_NAMES)
    quality: float | None = Field(None, ge=0, le=1)
    divisiveness: float | None = Field(None, ge=0, le=1)


class FollowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, description="an existing user id", **_ID)
    target: str = Field(min_length=1, description="an existing user id, not ``user``", **_ID)
    ts: _Time = Field(None, description=_TIME_DOC)
    id: str | None = Field(
        None,
        min_length=1,
        max_length=_LIMITS.max_id_chars,
        description="client idempotency key",
        json_schema_extra={"pattern": string_patterns()["plain"]},
    )


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
    429: "too many requests from this address, credential or person (see Retry-After)",
}


def object_response(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a route returning ``FastJSON`` (or another ``Response``): a JSON object, described (FastAPI
    would document a string, and a schema-checking client would then refuse every answer)."""
    schema = {"type": "object", "description": description}
    return {200: {"description": "OK", "content": {"application/json": {"schema": schema}}}}


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
#: for 422, while ``api.errors.validation_error`` answers ``ErrorOut``; any body may pass ``[api] max_body_bytes``;
#: any request may meet a rate limit (``api.middleware``: per address, credential or person).
APP_RESPONSES = error_responses(413, 422, 429)


def batch_body_schema(
    model: type[BaseModel], key: str, max_items: int, item: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI requestBody for a body that is one item, a list of items, or ``{key: [items]}`` (no other key);
    ``item`` is the item's schema when not ``model``'s own (events: ``event_item_schema``)."""
    item = item or model.model_json_schema()
    arr = {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}  # [] is refused (422)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            arr,
                            {
                                "type": "object",
                                "properties": {key: arr},
                                "required": [key],
                                "additionalProperties": False,
                            },
                            item,
                        ]
                    }
                }
            },
        }
    }
