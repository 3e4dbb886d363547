"""The vocabulary every layer shares: event kinds, the event batch, and the event specification."""

from glassfeed.domain.events import EVENT_COLUMNS, OBJECT_COLUMNS, ROW_FIELDS, Column, EventBatch
from glassfeed.domain.kinds import EITHER_TARGET_KINDS, KIND_NAMES, REQUEST_TARGET_KINDS, USER_TARGET_KINDS, EventKind
from glassfeed.domain.spec import EVENT_FIELDS, KIND_RULES, SERVER_ID_PREFIX, KindRule, Target, WireField, WireType

__all__ = [
    "EVENT_COLUMNS",
    "OBJECT_COLUMNS",
    "ROW_FIELDS",
    "Column",
    "EventBatch",
    "EITHER_TARGET_KINDS",
    "KIND_NAMES",
    "REQUEST_TARGET_KINDS",
    "USER_TARGET_KINDS",
    "EventKind",
    "EVENT_FIELDS",
    "KIND_RULES",
    "SERVER_ID_PREFIX",
    "KindRule",
    "Target",
    "WireField",
    "WireType",
]
