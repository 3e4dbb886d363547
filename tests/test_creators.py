"""Creator analytics, "why did my post travel" (docs/creators.md): each impression's channel from the page's
recorded sources and its policy from the request id; engagements credited to the viewer's latest touch before
them (else direct); follower growth per bucket; the record written by a real served page; auth (another
person's token 401, another person's post 403); 422 naming the field; the /creator page."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.creators.attribution import CHANNEL_CODE, impression_channels, last_touch, make_touches
from glassfeed.domain import EventBatch, EventKind
from glassfeed.settings import load_settings
from glassfeed.store import PageSourcesRow

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
WEB = {"X-Glassfeed-Web": "1"}  # the web page's own header (its CSRF guard)
K = EventKind
HOUR = 3600.0


# ---------------------------------------------------------------------- attribution on arrays
def _impressions(rows: list[tuple[int, int, float, int, str | None]]) -> EventBatch:
    """(viewer, post, ts, position, request_id) rows."""
    return EventBatch.from_columns(
        kind=np.full(len(rows), int(K.IMPRESSION), np.int8),
        user=[r[0] for r in rows],
        post=[r[1] for r in rows],
        ts=[r[2] for r in rows],
        position=[r[3] for r in rows],
        request_id=[r[4] for r in rows],
    )


def test_impression_channel_is_the_page_source_at_its_position_and_policy_the_request_id_tag():
    imp = _impressions(
        [
            (1, 10, 1.0, 0, "engagement:s1.0"),
            (1, 11, 1.0, 1, "engagement:s1.0"),
            (2, 10, 2.0, 0, "bridging:s2.3"),
            (3, 10, 3.0, 0, "chronological:s9.0"),  # no record of this page
            (3, 10, 4.0, -1, None),  # a client's impression: no page at all
            (2, 12, 2.0, 5, "bridging:s2.3"),  # beyond the recorded page
        ]
    )
    pages = {"engagement:s1.0": ("trending", "following"), "bridging:s2.3": ("content",)}
    channel, policy, names = impression_channels(imp, pages)
    want = ["trending", "following", "content", "unrecorded", "unrecorded", "unrecorded"]
    assert channel.tolist() == [CHANNEL_CODE[c] for c in want]
    assert [names[p] for p in policy.tolist()] == [
        "engagement",
        "engagement",
        "bridging",
        "chronological",
        "unrecorded",
        "bridging",
    ]


def test_an_engagement_goes_to_the_latest_touch_of_that_post_by_that_viewer_before_it():
    imp = _impressions(
        [
            (7, 10, 10.0, 0, "engagement:a.0"),
            (7, 10, 20.0, 0, "chronological:b.0"),
            (8, 10, 15.0, 0, "engagement:c.0"),
            (7, 11, 12.0, 0, "engagement:d.0"),
        ]
    )
    touches = make_touches(
        imp,
        {"engagement:a.0": ("following",), "chronological:b.0": ("trending",), "engagement:c.0": ("content",)},
        opens=(np.array([7]), np.array([10]), np.array([30.0])),
    )
    viewer = np.array([7, 7, 7, 7, 7, 8, 9, 7])
    post = np.array([10, 10, 10, 10, 10, 10, 10, 12])
    ts = np.array([5.0, 10.0, 15.0, 25.0, 31.0, 16.0, 40.0, 40.0])
    at = last_touch(touches, viewer, post, ts)
    # before any touch; at the touch's own second; after the first; after the second; after the notification;
    # another viewer's own touch; a viewer never shown it; a post never shown
    assert at.tolist() == [-1, 0, 0, 1, 4, 2, -1, -1]
    assert touches.channel[4] == CHANNEL_CODE["notification"]
    assert touches.policies[touches.policy[4]] == "none"
    assert last_touch(touches, viewer[:0], post[:0], ts[:0]).tolist() == []


# ---------------------------------------------------------------------- over HTTP, on a constructed log
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = load_settings(
        store={"path": tmp_path_factory.mktemp("creators") / "c.db"}, api={"key": KEY}, creators={"refresh_s": 0.0}
    )
    app = create_app(settings)
    with TestClient(app) as c:
        now = time.time()
        users = [{"id": u, "handle": u} for u in ("alice", "bob", "carol", "dan", "erin", "frank")]
        r = c.post("/v1/users", json={"users": users}, headers=H)
        assert r.status_code in (200, 201), r.text
        c.tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        # first, a real served page: frank follows erin, his feed shows her post; the page's sources are recorded
        r = c.post("/v1/posts", json=[{"id": "e1", "author": "erin", "text": "erin's post"}], headers=H)
        assert r.status_code in (200, 201), r.text
        c.post("/v1/events", json=[{"kind": "follow", "user": "frank", "target_user": "erin"}], headers=H)
        r = c.get("/v1/users/frank/feed", headers=H)
        assert r.status_code == 200 and [i["post"] for i in r.json()["items"]] == ["e1"], r.text
        c.frank_page = r.json()
        app.state.feed.flush_impressions()
        # then alice's posts and a log written as the feed would have: impressions with request ids and positions,
        # each page's sources in the same transaction
        posts = [
            {"id": "p1", "author": "alice", "text": "the first", "created_at": now - 10 * HOUR},
            {"id": "p2", "author": "alice", "text": "the second", "created_at": now - 9 * HOUR},
            {"id": "b1", "author": "bob", "text": "bob's", "created_at": now - 9 * HOUR},
        ]
        r = c.post("/v1/posts", json=posts, headers=H)
        assert r.status_code in (200, 201), r.text
        store = app.state.store
        u, p = store.user_idx, store.post_idx
        imp = [  # (viewer, post, ts, position, request_id)
            (u("carol"), p("p1"), now - 3 * HOUR, 0, "engagement:s1.0"),
            (u("carol"), p("b1"), now - 3 * HOUR, 1, "engagement:s1.0"),
            (u("dan"), p("p1"), now - 2 * HOUR, 0, "chronological:s2.0"),
            (u("dan"), p("p1"), now - 1 * HOUR, 0, "engagement:s3.0"),
            (u("bob"), p("p2"), now - 1 * HOUR, 0, None),
        ]
        pages = [
            PageSourcesRow("engagement:s1.0", u("carol"), now - 3 * HOUR, ("trending", "following")),
            PageSourcesRow("chronological:s2.0", u("dan"), now - 2 * HOUR, ("following",)),
            PageSourcesRow("engagement:s3.0", u("dan"), now - 1 * HOUR, ("social_proof",)),
        ]
        app.state.feed.ingestor.ingest_batch(_impressions(imp), pages=pages)
        events = [
            {"kind": "like", "user": "carol", "post": "p1", "ts": now - 2.9 * HOUR},  # -> engagement / trending
            {"kind": "like", "user": "dan", "post": "p1", "ts": now - 1.5 * HOUR},  # -> chronological / following
            {"kind": "repost", "user": "dan", "post": "p1", "ts": now - 0.5 * HOUR},  # -> engagement / social proof
            {"kind": "like", "user": "bob", "post": "p1", "ts": now - 1 * HOUR},  # never shown p1: direct
            {"kind": "follow", "user": "bob", "target_user": "alice", "ts": now - 30 * HOUR},
            {"kind": "follow", "user": "carol", "target_user": "alice", "ts": now - 5 * HOUR},
            {"kind": "follow", "user": "dan", "target_user": "alice", "ts": now - 4 * HOUR},
            {"kind": "unfollow", "user": "dan", "target_user": "alice", "ts": now - 3 * HOUR},
        ]
        r = c.post("/v1/events", json=events, headers=H)
        assert r.status_code == 200, r.text
        yield c


def test_posts_split_by_source_and_policy_with_engagements_on_the_last_impression(client):
    r = client.get("/v1/users/alice/creator?days=2&bucket=day", headers=H)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["post"] for p in body["posts"]] == ["p2", "p1"]  # newest first
    p1 = body["posts"][1]
    assert (p1["impressions"], p1["reached"], p1["engagements"]) == (3, 2, 4)
    assert p1["by_channel"] == {
        "following": {"impressions": 1, "reached": 1, "engagements": 1},
        "social_proof": {"impressions": 1, "reached": 1, "engagements": 1},
        "trending": {"impressions": 1, "reached": 1, "engagements": 1},
        "direct": {"impressions": 0, "reached": 0, "engagements": 1},
    }
    assert p1["by_policy"]["engagement"] == {
        "impressions": 2,
        "reached": 2,
        "engagements": 2,
        "engagements_per_impression": 1.0,
    }
    assert p1["by_policy"]["chronological"]["engagements"] == 1
    assert "33% of its 3 impressions (2 people)" in p1["summary"]
    assert "It reached 2 under engagement" in p1["summary"] and "1 through direct" in p1["summary"]
    p2 = body["posts"][0]
    assert p2["by_channel"] == {"unrecorded": {"impressions": 1, "reached": 1, "engagements": 0}}
    assert p2["by_policy"] == {
        "unrecorded": {"impressions": 1, "reached": 1, "engagements": 0, "engagements_per_impression": 0.0}
    }
    assert body["totals"]["impressions"] == 4 and body["totals"]["engagements"] == 4
    series = body["series"]
    assert len(series["t"]) == 2 and series["impressions"]["trending"] == [0, 1]
    assert series["engagements"]["direct"] == [0, 1]


def test_follower_growth_per_bucket_with_unfollows(client):
    f = client.get("/v1/users/alice/creator?days=2&bucket=day", headers=H).json()["followers"]
    assert f["now"] == 2
    assert (f["gained"], f["lost"], f["total"]) == ([1, 2], [0, 1], [1, 2])
    hourly = client.get("/v1/users/alice/creator?days=2&bucket=hour", headers=H).json()["followers"]
    assert len(hourly["t"]) == 48 and sum(hourly["gained"]) == 3 and hourly["total"][-1] == 2


def test_one_posts_detail_crosses_source_and_policy(client):
    tok = {"Authorization": f"Bearer {client.tokens['alice']}"}
    r = client.get("/v1/users/alice/creator/posts/p1?days=2", headers=tok)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["post"] == "p1" and d["engagements_by_kind"]["like"] == 3 and d["engagements_by_kind"]["repost"] == 1
    assert {(x["channel"], x["policy"], x["impressions"], x["engagements"]) for x in d["by_channel_policy"]} == {
        ("trending", "engagement", 1, 1),
        ("social_proof", "engagement", 1, 1),
        ("following", "chronological", 1, 1),
    }
    assert d["summary"] and d["series"]["t"]


def test_a_real_served_page_records_each_posts_source(client):
    page = client.frank_page
    r = client.get("/v1/users/erin/creator/posts/e1?days=1", headers=H)
    assert r.status_code == 200, r.text
    d = r.json()
    src = page["items"][0]["source"]
    assert d["impressions"] == 1 and set(d["by_channel"]) == {src}
    assert set(d["by_policy"]) == {page["policy"]}


def test_the_viewers_data_export_holds_the_sources_of_the_pages_served_to_them(client):
    page = client.frank_page
    data = client.get("/v1/users/frank/data", headers=H).json()
    (rid,) = {e["request_id"] for e in data["events"] if e["kind"] == "impression"}
    assert data["page_sources"] == {rid: [it["source"] for it in page["items"]]}


def test_auth_another_persons_token_and_post(client):
    alice = {"Authorization": f"Bearer {client.tokens['alice']}"}
    assert client.get("/v1/users/alice/creator", headers=alice).status_code == 200
    assert client.get("/v1/users/bob/creator", headers=alice).status_code == 401  # not bob's token
    assert client.get("/v1/users/alice/creator").status_code == 401
    r = client.get("/v1/users/alice/creator/posts/b1", headers=alice)  # bob's post
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "post_id"
    r = client.get("/v1/users/alice/creator/posts/nope", headers=alice)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "post_id"
    assert client.get("/v1/users/nobody/creator", headers=H).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [("days=0", "days"), ("days=91", "days"), ("days=x", "days"), ("bucket=month", "bucket"), ("bucket=", "bucket")],
)
def test_bad_params_422_naming_the_field(client, query, field):
    r = client.get(f"/v1/users/alice/creator?{query}", headers=H)
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["detail"]] == [field]


def test_the_creator_page_lists_the_signed_in_persons_posts(client):
    assert "Sign in" in client.get("/creator").text  # no session: asks to sign in
    r = client.post("/web/session", json={"user": "alice", "token": client.tokens["alice"]}, headers=WEB)
    assert r.status_code == 200, r.text
    page = client.get("/creator?days=2")
    assert page.status_code == 200
    assert 'data-post="p1"' in page.text and 'data-post="p2"' in page.text and 'data-post="b1"' not in page.text
    assert "33% of its 3 impressions" in page.text and 'data-channel="social_proof"' in page.text
    one = client.get("/creator?post=p1&days=2")
    assert one.status_code == 200 and 'id="creator-cross"' in one.text
    bad = client.get("/creator?days=500")
    assert bad.status_code == 422 and 'id="creator-err-days"' in bad.text
    client.delete("/web/session", headers=WEB)
