"""The vocabulary of glassfeed: users, posts, edges and engagement events.

Plain dataclasses and enums shared by every stage. External ids are strings (they may be
Bluesky DIDs or at:// URIs); the store assigns each user and post a dense integer ``idx`` that the
in-memory serving state uses as an array index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class EventKind(IntEnum):
    """Every engagement or graph event the engine understands (stored as its integer value)."""

    IMPRESSION = 1
    CLICK = 2
    DWELL = 3  # value = dwell time in milliseconds
    LIKE = 4
    UNLIKE = 5
    REPOST = 6
    REPLY = 7
    QUOTE = 8
    SHARE = 9
    BOOKMARK = 10
    FOLLOW = 11
    UNFOLLOW = 12
    MUTE = 13
    BLOCK = 14
    SEE_LESS = 15  # "show less like this"
    SEE_MORE = 16
    REPORT = 17
    NOT_INTERESTED = 18
    UNMUTE = 19
    UNBLOCK = 20

    @classmethod
    def parse(cls, name: str) -> "EventKind":
        """Map a wire name such as ``"see_less"`` to its kind; raises ``ValueError`` otherwise."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown event kind {name!r}; expected one of {', '.join(KIND_NAMES)}") from None

    @property
    def wire(self) -> str:
        return self.name.lower()


KIND_NAMES: tuple[str, ...] = tuple(k.name.lower() for k in EventKind)

#: Kinds whose target is another user (graph edges); all other kinds target a post.
USER_TARGET_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.FOLLOW, EventKind.UNFOLLOW, EventKind.MUTE, EventKind.UNMUTE, EventKind.BLOCK, EventKind.UNBLOCK}
)

#: Kinds that may target either a post or a user (e.g. "see less of this author").
EITHER_TARGET_KINDS: frozenset[EventKind] = frozenset({EventKind.SEE_LESS, EventKind.SEE_MORE, EventKind.REPORT,
                                                       EventKind.NOT_INTERESTED})


@dataclass(slots=True)
class User:
    id: str
    handle: str = ""
    created_at: float = 0.0
    interests: list[str] = field(default_factory=list)  # onboarding topics (cold start)
    community: int | None = None  # synthetic/known community or leaning bucket, if any
    idx: int | None = None


@dataclass(slots=True)
class Post:
    id: str
    author: str
    text: str
    created_at: float
    reply_to: str | None = None
    repost_of: str | None = None
    quote_of: str | None = None
    topics: list[str] = field(default_factory=list)
    lang: str = "en"
    labels: list[str] = field(default_factory=list)  # moderation labels, e.g. "graphic", "spam"
    quality: float | None = None  # synthetic ground truth, unknown for real posts
    divisiveness: float | None = None  # synthetic ground truth / classifier score in [0, 1]
    idx: int | None = None


@dataclass(slots=True)
class Event:
    """One engagement or graph event. ``target_post`` or ``target_user`` is set according to the kind."""

    kind: EventKind
    user: str
    ts: float
    target_post: str | None = None
    target_user: str | None = None
    id: str | None = None  # client idempotency key; the store generates one when absent
    value: float | None = None  # dwell ms for DWELL
    surface: str | None = None
    position: int | None = None
    request_id: str | None = None
