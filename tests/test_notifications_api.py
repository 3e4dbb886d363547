"""Notifications over HTTP: events become inbox items at once (aggregated, idempotent), the schedule's decision
with its "why", settings within bounds, Web Push subscriptions, the policies' statements."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture()
def client(tmp_path):
    settings = load_settings(
        store={"path": tmp_path / "n.db"}, api={"key": KEY}, notifications={"default_policy": "engagement_push"}
    )
    with TestClient(create_app(settings)) as c:
        users = [{"id": u, "handle": u} for u in ("alice", "bob", "carol", "dan")]
        c.tokens = {u["id"]: u["token"] for u in c.post("/v1/users", json={"users": users}, headers=H).json()["users"]}
        assert (
            c.post("/v1/posts", json=[{"id": "p1", "author": "alice", "text": "hello"}], headers=H).status_code == 201
        )
        yield c


def tok(c, user):
    return {"Authorization": f"Bearer {c.tokens[user]}"}


def _events(c, rows):
    r = c.post("/v1/events", json=rows, headers=H)
    assert r.status_code == 200, r.text


def test_events_become_aggregated_inbox_items_and_replays_add_nothing(client):
    now = (time.time() // 3600) * 3600 - 1800  # mid-hour: engagement_push aggregates likes per hour
    _events(
        client,
        [
            {"kind": "like", "user": "bob", "post": "p1", "ts": now, "id": "e1"},
            {"kind": "like", "user": "carol", "post": "p1", "ts": now + 1, "id": "e2"},
            {"kind": "reply", "user": "dan", "post": "p1", "ts": now + 2, "id": "e3"},
            {"kind": "follow", "user": "bob", "target_user": "alice", "ts": now + 3, "id": "e4"},
            {"kind": "like", "user": "alice", "post": "p1", "ts": now + 4, "id": "e5"},  # her own post: nothing
        ],
    )
    box = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()
    texts = sorted(i["text"] for i in box["items"])
    assert texts == ["@bob and @carol liked your post", "@bob followed you", "@dan replied to your post"]
    assert box["unread"] == 3
    _events(client, [{"kind": "like", "user": "bob", "post": "p1", "ts": now, "id": "e1"}])  # a retried event
    assert client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["unread"] == 3
    _events(client, [{"kind": "like", "user": "dan", "post": "p1", "ts": now + 5}])
    box = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()
    like = next(i for i in box["items"] if i["kind"] == "like")
    assert like["count"] == 3 and box["items"][0]["kind"] == "like"  # updated: newest first
    assert client.get("/v1/users/bob/notifications", headers=tok(client, "alice")).status_code == 401
    r = client.post("/v1/users/alice/notifications/read", json={"ids": [like["id"]]}, headers=tok(client, "alice"))
    assert r.json() == {"marked": 1, "unread": 2}
    assert (
        client.post("/v1/users/alice/notifications/read", json={}, headers=tok(client, "alice")).json()["unread"] == 0
    )


def test_why_names_the_source_the_rule_and_how_to_turn_it_off(client):
    _events(client, [{"kind": "reply", "user": "dan", "post": "p1"}])
    item = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["items"][0]
    why = client.get(f"/v1/users/alice/notifications/{item['id']}/why", headers=tok(client, "alice")).json()
    assert why["policy"] == "engagement_push" and why["rule"] == "immediate" and why["push_at"] is not None
    assert why["p_open"] == pytest.approx(0.30) and why["worth"] == pytest.approx(0.30)
    assert why["turn_off"]["body"]["kinds_off"] == ["reply"]
    # follow the advice: replies are no longer pushed, but still in the inbox
    r = client.put("/v1/users/alice/notification-settings", json=why["turn_off"]["body"], headers=tok(client, "alice"))
    assert r.status_code == 200, r.text
    _events(client, [{"kind": "reply", "user": "carol", "post": "p1"}])
    item = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["items"][0]
    assert item["push_at"] is None
    why = client.get(f"/v1/users/alice/notifications/{item['id']}/why", headers=tok(client, "alice")).json()
    assert why["rule"] == "kind_off" and "not pushed" in why["rule_words"]
    assert client.get("/v1/users/alice/notifications/99999/why", headers=tok(client, "alice")).status_code == 404


def test_why_names_the_policy_that_decided_not_the_one_now(client):
    """Decided under engagement_push; the person then switches to batched: "why" still names engagement_push, its
    rule and the threshold she had then, and gives her policy now beside it."""
    _events(client, [{"kind": "reply", "user": "dan", "post": "p1"}])
    first = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["items"][0]
    body = {"policy": "batched", "push_threshold": 0.5}
    r = client.put("/v1/users/alice/notification-settings", json=body, headers=tok(client, "alice"))
    assert r.status_code == 200, r.text
    why = client.get(f"/v1/users/alice/notifications/{first['id']}/why", headers=tok(client, "alice")).json()
    assert why["policy"] == "engagement_push" and why["policy_from"] == "the decision"
    assert why["policy_now"] == "batched"
    assert why["rule"] == "immediate" and why["rule_words"] == "pushed as soon as it happened"
    assert why["push_threshold"] == pytest.approx(0.02)  # engagement_push's, not her 0.5 now
    assert why["value"] == pytest.approx(1.0) and why["p_open"] == pytest.approx(0.30)
    assert "prior" in why["p_open_from"]
    # a reply after the switch is decided under batched with her threshold: 0.30 x 1.0 is below 0.5
    _events(client, [{"kind": "reply", "user": "carol", "post": "p1"}])
    items = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["items"]
    second = next(i for i in items if i["id"] != first["id"] and i["kind"] == "reply")
    why = client.get(f"/v1/users/alice/notifications/{second['id']}/why", headers=tok(client, "alice")).json()
    assert why["policy"] == "batched" and why["policy_now"] == "batched"
    assert why["rule"] == "below_threshold" and why["push_threshold"] == pytest.approx(0.5)


def test_why_of_a_row_decided_before_the_policy_was_recorded(client):
    """A row whose ``rule`` holds the rule alone (written before decisions named their policy) is explained
    under the person's policy now, and says so."""
    from glassfeed.notifications.service import decision_label, parse_decision

    assert parse_decision("digest") == (None, "digest", None, None)
    label = decision_label("my/policy", "digest", 0.25, "model")
    assert parse_decision(label) == ("my/policy", "digest", 0.25, "model")
    svc = client.app.state.notifications
    _events(client, [{"kind": "reply", "user": "dan", "post": "p1"}])
    item = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["items"][0]
    store = svc.store
    row = store.notifications(store.user_idx("alice"), ids=[item["id"]], limit=1)[0]
    with store.transaction() as tx:
        store.upsert_notifications(tx, [row._replace(rule="immediate")])
    why = client.get(f"/v1/users/alice/notifications/{item['id']}/why", headers=tok(client, "alice")).json()
    assert why["rule"] == "immediate" and why["policy"] == "engagement_push"
    assert why["policy_from"].startswith("now") and why["push_threshold"] == pytest.approx(0.02)


def test_settings_refused_outside_bounds_name_the_field(client):
    for body, field in [
        ({"policy": "loud"}, "policy"),
        ({"policy": "batched", "daily_cap": 99}, "daily_cap"),
        ({"time_zone": "Nowhere/Town"}, "time_zone"),
        ({"digest_times": ["7am"]}, "digest_times"),
        ({"volume": 3}, "volume"),
    ]:
        r = client.put("/v1/users/alice/notification-settings", json=body, headers=tok(client, "alice"))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["field"] == field, r.text
    r = client.put(
        "/v1/users/alice/notification-settings",
        json={"policy": "batched", "time_zone": "Europe/Paris", "digest_times": ["08:30", "18:00"]},
        headers=tok(client, "alice"),
    )
    got = r.json()
    assert got["policy"] == "batched" and "08:30, 18:00" in got["statement"]
    prefs = client.get("/v1/users/alice/prefs", headers=tok(client, "alice")).json()
    assert prefs["prefs"]["notifications"]["time_zone"] == "Europe/Paris"  # kept beside the feed's preferences


def _browser_keys() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return {"p256dh": b64(pub), "auth": b64(b"0123456789abcdef")}


def test_push_subscriptions_are_validated(client):
    key = client.get("/v1/notifications/vapid-public-key").json()["key"]
    assert len(base64.urlsafe_b64decode(key + "==")) == 65  # an uncompressed P-256 point
    keys = _browser_keys()
    ok = {"endpoint": "https://push.example.org/abc", "keys": keys}
    r = client.post("/v1/users/alice/push-subscriptions", json=ok, headers=tok(client, "alice"))
    assert r.status_code == 201, r.text
    bad = {"endpoint": "http://push.example.org/abc", "keys": keys}  # not https
    r = client.post("/v1/users/alice/push-subscriptions", json=bad, headers=tok(client, "alice"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "endpoint"
    r = client.post(
        "/v1/users/alice/push-subscriptions",
        json={"endpoint": "https://push.example.org/x", "keys": {"p256dh": "AAAA", "auth": keys["auth"]}},
        headers=tok(client, "alice"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "keys.p256dh"
    not_a_point = {"p256dh": "A" * 87, "auth": keys["auth"]}  # the right shape, but no point on the curve
    r = client.post(
        "/v1/users/alice/push-subscriptions",
        json={"endpoint": "https://push.example.org/y", "keys": not_a_point},
        headers=tok(client, "alice"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "keys"


def test_push_subscriptions_are_listed_and_forgotten_by_their_owner_only(client):
    sub = {"endpoint": "https://push.example.org/alice", "keys": _browser_keys(), "expirationTime": None}
    assert client.post("/v1/users/alice/push-subscriptions", json=sub, headers=tok(client, "alice")).status_code == 201
    listed = client.get("/v1/users/alice/push-subscriptions", headers=tok(client, "alice")).json()
    assert listed == {"subscriptions": [{"endpoint": sub["endpoint"]}]}
    assert client.get("/v1/users/alice/push-subscriptions", headers=tok(client, "bob")).status_code == 401
    # bob cannot forget alice's subscription, not even through his own path
    r = client.request("DELETE", "/v1/users/bob/push-subscriptions", json=sub, headers=tok(client, "bob"))
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "endpoint"
    r = client.request("DELETE", "/v1/users/alice/push-subscriptions", json=sub, headers=tok(client, "alice"))
    assert r.status_code == 200 and r.json() == {"unsubscribed": sub["endpoint"]}
    assert client.get("/v1/users/alice/push-subscriptions", headers=H).json() == {"subscriptions": []}
    r = client.request("DELETE", "/v1/users/alice/push-subscriptions", json=sub, headers=tok(client, "alice"))
    assert r.status_code == 404  # forgotten already
    r = client.request(
        "DELETE", "/v1/users/alice/push-subscriptions", json={"endpoint": "ftp://x"}, headers=tok(client, "alice")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "endpoint"


def test_policies_in_plain_language(client):
    names = [p["name"] for p in client.get("/v1/notification-policies").json()["policies"]]
    assert names == ["batched", "engagement_push", "minimal"]
    assert "three digests" in client.get("/v1/notification-policies/batched").text.lower()
    assert client.get("/v1/notification-policies/loud").status_code == 404


def test_notification_events_name_the_notification(client):
    _events(client, [{"kind": "reply", "user": "dan", "post": "p1"}])
    (item,) = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()["items"]
    assert item["request_id"] == f"n{item['id']}" and not item["read"]
    _events(client, [{"kind": "notification_open", "user": "alice", "request_id": item["request_id"]}])
    box = client.get("/v1/users/alice/notifications", headers=tok(client, "alice")).json()
    assert box["unread"] == 0 and box["items"][0]["read"]  # opening it read it
    bad = [
        ({"kind": "notification_open", "user": "alice"}, "request_id"),
        ({"kind": "worth_it", "user": "alice", "request_id": "r1", "value": 3}, "value"),
        ({"kind": "worth_it", "user": "alice", "request_id": "r1"}, "value"),
    ]
    for event, field in bad:
        r = client.post("/v1/events", json=[event], headers=H)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    _events(client, [{"kind": "worth_it", "user": "alice", "request_id": "r1", "value": 1}])


def test_suggest_makes_affinity_and_you_might_like_candidates(client):
    now = time.time()
    svc = client.app.state.notifications
    store = client.app.state.store
    posts = [{"id": f"b{i}", "author": "bob", "text": f"bob {i}", "created_at": now - 600 + i} for i in range(3)]
    posts.append({"id": "c1", "author": "carol", "text": "carol's post", "created_at": now - 300})
    assert client.post("/v1/posts", json=posts, headers=H).status_code == 201
    _events(client, [{"kind": "like", "user": "alice", "post": "b0", "ts": now - 500}])  # alice likes bob: affinity
    alice = store.user_idx("alice")
    ids = svc.suggest(now - 3600, now, users=[alice])
    kinds = sorted(i["kind"] for i in client.get("/v1/users/alice/notifications", headers=H).json()["items"])
    assert "affinity_post" in kinds and "you_might_like" in kinds and len(ids) == len(kinds)
    assert svc.suggest(now - 3600, now, users=[alice]) == []  # the same suggestions again: nothing new
    _events(client, [{"kind": "follow", "user": "alice", "target_user": "carol", "ts": now - 200}])
    svc.suggest(now - 3600, now, users=[alice], weekly=True)
    items = client.get("/v1/users/alice/notifications", headers=H).json()["items"]
    (digest,) = [i for i in items if i["kind"] == "weekly_digest"]
    assert digest["post"] == "c1" and "What you missed this week" in digest["text"]
    assert svc.suggest(now - 3600, now, users=[alice], weekly=True) == []  # once a week


def test_ids_beyond_the_store_are_refused_not_errors(client):
    r = client.get(f"/v1/users/alice/notifications/{2**70}/why", headers=tok(client, "alice"))
    assert r.status_code == 422
    r = client.post("/v1/users/alice/notifications/read", json={"ids": [2**70]}, headers=tok(client, "alice"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"].startswith("ids")
