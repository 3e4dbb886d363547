"""Event kinds: every engagement or graph event the engine understands, and what each one targets.

External ids are strings (they may be Bluesky DIDs or at:// URIs); the store assigns each user and post a dense
integer ``idx`` (from 1) that events and the in-memory serving state use.
"""

from __future__ import annotations

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
    # notification logs and the wellbeing survey: ``request_id`` names what they answer ("n<id>": a notification;
    # a feed page's request id for worth_it)
    NOTIFICATION_OPEN = 21  # opened a notification (a push or an inbox item)
    NOTIFICATION_DISMISS = 22  # swiped a pushed notification away unopened
    NOTIFICATIONS_OFF = 23  # turned this kind of notification off (or muted its sender) from a notification
    WORTH_IT = 24  # "was this worth your time?" answered: value 1 = yes, 0 = no
    # "people you may know" (glassfeed.suggest): target_user = the suggested account, position = its place in the
    # list, request_id = the list's id ("s:<policy>:<hex>"), surface "suggestions"; logged by the server when served
    SUGGESTION_IMPRESSION = 25

    @classmethod
    def parse(cls, name: str) -> EventKind:
        """Map a wire name such as ``"see_less"`` to its kind; raises ``ValueError`` otherwise."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown event kind {name!r}; expected one of {', '.join(KIND_NAMES)}") from None

    @property
    def wire(self) -> str:
        return self.name.lower()


KIND_NAMES: tuple[str, ...] = tuple(k.name.lower() for k in EventKind)

#: Kinds whose target is another user (graph edges, and a suggested account shown); all other kinds target a post.
USER_TARGET_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.FOLLOW,
        EventKind.UNFOLLOW,
        EventKind.MUTE,
        EventKind.UNMUTE,
        EventKind.BLOCK,
        EventKind.UNBLOCK,
        EventKind.SUGGESTION_IMPRESSION,
    }
)

#: Kinds that target neither a post nor a user: they answer a notification or a feed page (``request_id``).
REQUEST_TARGET_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.NOTIFICATION_OPEN, EventKind.NOTIFICATION_DISMISS, EventKind.NOTIFICATIONS_OFF, EventKind.WORTH_IT}
)

#: Kinds that may target either a post or a user (e.g. "see less of this author").
EITHER_TARGET_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.SEE_LESS, EventKind.SEE_MORE, EventKind.REPORT, EventKind.NOT_INTERESTED}
)
