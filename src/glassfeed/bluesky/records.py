"""AT URIs and record lookups shared by the XRPC routes and the Jetstream ingester.

Bluesky records keep their at:// URI as glassfeed ids: posts are stored under their post URI, and events that
come from a record (like, repost, follow, block) use the record URI as the event id, so replays are no-ops and a
later delete (which names only the record) can be joined back to what it undoes.
"""

from __future__ import annotations

import re
from typing import Any

from glassfeed.domain import EventKind
from glassfeed.store import Store

AT_URI = re.compile(r"^at://(did:[a-z]+:[A-Za-z0-9._:%-]+)/([a-zA-Z0-9.-]+)/([A-Za-z0-9._~:-]{1,512})$")
#: how many of a user's newest events a record lookup scans (deletes of older records are not matched)
LOOKBACK_EVENTS = 20_000


def parse_at_uri(uri: Any) -> tuple[str, str, str] | None:
    """``at://did/collection/rkey`` -> (did, collection, rkey); None when not a record URI."""
    m = AT_URI.match(uri) if isinstance(uri, str) else None
    return (m.group(1), m.group(2), m.group(3)) if m else None


def record_uri(did: str, collection: str, rkey: str) -> str:
    return f"at://{did}/{collection}/{rkey}"


def find_record_event(store: Store, user_id: str, event_id: str) -> tuple[EventKind, int | None, int | None] | None:
    """(kind, post idx, target user idx) of the event stored under ``event_id`` by ``user_id``, if recent enough."""
    u = store.user_idx(user_id)
    if u is None:
        return None
    for _seq, eid, kind, post, target, *_ in store.user_events(u, LOOKBACK_EVENTS):
        if eid == event_id:
            return EventKind(kind), post, target
    return None


def has_engagement(store: Store, user: int, post: int, kind: EventKind, lookback: int = 2000) -> bool:
    """Whether ``user`` already has a ``kind`` event on ``post`` among their newest ``lookback`` events."""
    return any(k == int(kind) and p == post for _s, _i, k, p, *_ in store.user_events(user, lookback))


def repost_record_uri(store: Store, reposter: str, post: int) -> str | None:
    """The at:// URI of ``reposter``'s repost of ``post`` when it came from a Bluesky repost record."""
    u = store.user_idx(reposter)
    if u is None:
        return None
    for _seq, eid, kind, p, *_ in store.user_events(u, 2000):
        if kind == int(EventKind.REPOST) and p == post:
            parsed = parse_at_uri(eid)
            if parsed and parsed[1] == "app.bsky.feed.repost":
                return eid
    return None
