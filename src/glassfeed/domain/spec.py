"""The event specification: what one event on the wire may carry, and which rules each kind adds.

This is the one place the event format is written. Everything else is derived from it:

- the per-item validator for wire events (``Ingestor.ingest_events``: HTTP, bulk import, Bluesky) and the
  vectorised validator for resolved ``EventBatch`` columns (``Ingestor.ingest_batch``), both in
  ``glassfeed.ingest``, which turn ``EVENT_FIELDS`` and ``KIND_RULES`` into checks;
- the OpenAPI schema of an event (``glassfeed.api.schemas.EventIn``);
- the typed columns of a CSV import (``glassfeed.bulk``).

Each wire field names the ``EventBatch`` column it fills (the same name) and, when a setting bounds it, the key
of ``[ingest]`` in the settings (``settings.IngestLimits``) that does. Fields not listed here are refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from glassfeed.domain.kinds import EITHER_TARGET_KINDS, REQUEST_TARGET_KINDS, USER_TARGET_KINDS, EventKind

#: Prefix of the ids the server gives events sent without one (``gf:<seq>``); clients may not use it.
SERVER_ID_PREFIX = "gf:"

#: Unicode categories an id or handle may not contain: control (Cc), format (Cf: zero-width characters, bidi
#: overrides and isolates, the byte-order mark), surrogates (Cs) and line/paragraph separators (Zl, Zp). They are
#: invisible or reorder text, so ``u1`` and ``u1\u200b`` would look the same.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
UNSAFE_CHARS_REASON = "may not contain control, zero-width, bidi-override or other invisible characters"
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_unsafe_chars(s: str) -> bool:
    """Whether ``s`` holds a character of ``UNSAFE_CATEGORIES`` (the one rule for ids and handles)."""
    if s.isascii():
        return _ASCII_CONTROL.search(s) is not None
    return any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in s)


def unsafe_mask(values: Sequence[object]) -> np.ndarray:
    """``has_unsafe_chars`` of each value (``False`` for a non-string): one pass in C when all are plain ASCII."""
    joined = "".join([v for v in values if isinstance(v, str)])
    if joined.isascii() and _ASCII_CONTROL.search(joined) is None:
        return np.zeros(len(values), bool)
    return np.fromiter((isinstance(v, str) and has_unsafe_chars(v) for v in values), bool, len(values))


class WireType(Enum):
    """How a field is written on the wire, and so how it is parsed and checked."""

    KIND = "kind"  # an event kind's wire name ("like", "see_less", ...)
    USER = "user"  # a user's external id, resolved to the store's idx
    POST = "post"  # a post's external id, resolved to the store's idx
    TIME = "time"  # epoch seconds or an ISO 8601 string with a timezone
    NUMBER = "number"  # a finite JSON number (not a boolean)
    INTEGER = "integer"  # a JSON integer (not a boolean)
    STRING = "string"


class Bound(Enum):
    """What the field's ``limit`` (a key of ``IngestLimits``) bounds."""

    CHARS = "chars"  # a string of at most ``limit`` characters
    AT_MOST = "at_most"  # a number in [0, limit]
    BELOW = "below"  # an integer in [0, limit)
    FUTURE_SKEW = "future_skew"  # a time no more than ``limit`` seconds after the server's clock


@dataclass(frozen=True, slots=True)
class WireField:
    """One field of an event on the wire (and the ``EventBatch`` column of the same name)."""

    name: str
    type: WireType
    description: str
    required: bool = False
    limit: str | None = None  # the ``IngestLimits`` key bounding the value
    bound: Bound | None = None  # what ``limit`` bounds
    nonempty: bool = False  # an empty string is refused
    reserved_prefix: str | None = None  # values starting with it are refused
    plain: bool = False  # values with unsafe characters (``has_unsafe_chars``) are refused


#: Every field an event may carry, in the order errors about one event are reported.
EVENT_FIELDS: tuple[WireField, ...] = (
    WireField(
        "id",
        WireType.STRING,
        "client idempotency key; re-sending it changes nothing",
        limit="max_id_chars",
        bound=Bound.CHARS,
        nonempty=True,
        reserved_prefix=SERVER_ID_PREFIX,
        plain=True,
    ),
    WireField("kind", WireType.KIND, "the event kind", required=True),
    WireField("user", WireType.USER, "external id of the acting user", required=True),
    WireField("post", WireType.POST, "target post id (post kinds)"),
    WireField("target_user", WireType.USER, "target user id (follow/mute/block..., the suggested account)"),
    WireField(
        "ts",
        WireType.TIME,
        "epoch seconds or ISO 8601 with timezone; default now",
        limit="max_future_skew_s",
        bound=Bound.FUTURE_SKEW,
    ),
    WireField(
        "value", WireType.NUMBER, "dwell time in ms (required for dwell)", limit="max_dwell_ms", bound=Bound.AT_MOST
    ),
    WireField(
        "surface",
        WireType.STRING,
        "where the event happened (e.g. home, profile)",
        limit="max_surface_chars",
        bound=Bound.CHARS,
    ),
    WireField(
        "position",
        WireType.INTEGER,
        "the 0-based position of the post in the feed page (or of the account in the suggestion list) it was shown on",
        limit="max_position",
        bound=Bound.BELOW,
    ),
    WireField(
        "request_id",
        WireType.STRING,
        "the feed page or suggestion list that served it (the response's request_id)",
        limit="max_request_id_chars",
        bound=Bound.CHARS,
    ),
)
FIELDS_BY_NAME: dict[str, WireField] = {f.name: f for f in EVENT_FIELDS}
WIRE_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS)


class Target(Enum):
    """What an event of a kind acts on."""

    POST = "post"  # needs ``post``
    USER = "user"  # needs ``target_user``
    POST_OR_USER = "post_or_user"  # needs ``post`` or ``target_user``
    REQUEST = "request"  # needs ``request_id``: the notification ("n<id>") or feed page it answers


@dataclass(frozen=True, slots=True)
class KindRule:
    """What an event of one kind needs beyond the always-required fields."""

    target: Target
    requires: tuple[str, ...] = ()  # further wire fields this kind needs
    requires_reason: str = ""  # why, as the error names it
    value_range: tuple[float, float] | None = None  # the kind's own bounds on ``value`` (inclusive)


def _rule(kind: EventKind) -> KindRule:
    if kind is EventKind.WORTH_IT:
        return KindRule(
            Target.REQUEST, ("request_id", "value"), "worth_it needs the page's request_id and value 1 or 0", (0.0, 1.0)
        )
    if kind in REQUEST_TARGET_KINDS:
        return KindRule(Target.REQUEST, ("request_id",), f"{kind.wire} needs the notification's request_id (n<id>)")
    target = (
        Target.USER
        if kind in USER_TARGET_KINDS
        else Target.POST_OR_USER
        if kind in EITHER_TARGET_KINDS
        else Target.POST
    )
    if kind is EventKind.DWELL:
        return KindRule(target, ("value",), "dwell needs value = dwell time in ms")
    return KindRule(target)


#: The rule of every kind.
KIND_RULES: dict[EventKind, KindRule] = {k: _rule(k) for k in EventKind}

__all__ = [
    "SERVER_ID_PREFIX",
    "UNSAFE_CATEGORIES",
    "UNSAFE_CHARS_REASON",
    "has_unsafe_chars",
    "unsafe_mask",
    "WireType",
    "Bound",
    "WireField",
    "EVENT_FIELDS",
    "FIELDS_BY_NAME",
    "WIRE_FIELD_NAMES",
    "Target",
    "KindRule",
    "KIND_RULES",
]
