"""Feed sessions live in the serving layer: request-id parsing, served sets, TTL from ``serving.session_ttl_s``."""

from __future__ import annotations

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.sessions import Sessions, format_request_id, parse_request_id
from glassfeed.settings import packaged_settings


def test_request_id_round_trips_and_foreign_ids_keep_their_session():
    rid = format_request_id("engagement", "abc123", 4)
    assert rid == "engagement:abc123.4"
    assert parse_request_id(rid) == ("engagement", "abc123", 4)
    assert parse_request_id("bsky:feed:xyz.2").session == "xyz"
    assert parse_request_id("plain").session == "plain"


def test_served_sets_grow_from_pages_and_logged_impressions_then_expire():
    s = Sessions(ttl_s=100.0)
    s.add("a", [1, 2], ts=1000.0)
    ev = EventBatch.from_columns(
        kind=[int(EventKind.IMPRESSION), int(EventKind.LIKE), int(EventKind.IMPRESSION)],
        user=[1, 1, 1],
        post=[3, 4, 5],
        ts=[1001.0, 1001.0, 1002.0],
        request_id=["engagement:a.1", "engagement:a.1", None],
    )
    s.record(ev)
    assert s.served("a") == {1, 2, 3}  # likes and impressions without a request id add nothing
    s.served("a").add(99)  # a copy: callers cannot change a session
    assert 99 not in s.served("a")
    s.expire(1100.0)
    assert s.served("a") == {1, 2, 3}
    s.expire(1100.5)
    assert s.served("a") == set() and len(s) == 0


def test_feed_service_takes_the_ttl_from_serving_settings(fresh_feed):
    svc, _ = fresh_feed
    assert svc.sessions.ttl_s == svc.settings.serving.session_ttl_s == packaged_settings().serving.session_ttl_s
    uid = svc.state.users.id_of(int(np.argmax(svc.state.counters.events(np.arange(svc.state.n_users + 1)))))
    page = svc.feed(uid, limit=5, log_impressions=False)
    session = parse_request_id(page["request_id"]).session
    assert svc.sessions.served(session) == {svc.store.post_idx(it["post"]) for it in page["items"]}
