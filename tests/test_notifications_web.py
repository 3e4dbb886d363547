"""The notification bell, inbox and settings on the person's web page, without a browser: the page loads
notifications.js under the strict CSP (no inline script or style, every control labelled), the script never writes
HTML and mirrors the kinds the server knows, and the same-origin proxy reaches the notification routes for the
signed-in person only."""

from __future__ import annotations

import base64
import re
import time
from html.parser import HTMLParser

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.notifications.policy import KIND_WORDS, KINDS, load_notification_policies
from glassfeed.settings import load_settings
from glassfeed.web.routes import ME_PATHS, WEB_DIR

KEY = "notif-web-test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
WEB = {"X-Glassfeed-Web": "1"}
LOCAL = "http://localhost:8000"
JS = WEB_DIR / "static" / "notifications.js"


@pytest.fixture()
def client(tmp_path):
    settings = load_settings(
        store={"path": tmp_path / "nw.db"},
        api={"key": KEY},
        serving={"clock": "wall"},
        notifications={"default_policy": "engagement_push"},
    )
    with TestClient(create_app(settings), base_url=LOCAL, client=("127.0.0.1", 50000)) as c:
        users = [{"id": u} for u in ("alice", "bob", "carol", "dan")]
        c.tokens = {u["id"]: u["token"] for u in c.post("/v1/users", json={"users": users}, headers=H).json()["users"]}
        now = time.time() - 60
        posts = [{"id": "p1", "author": "alice", "text": "hello", "created_at": now}]
        assert c.post("/v1/posts", json=posts, headers=H).status_code == 201
        events = [
            {"kind": "reply", "user": "dan", "post": "p1", "ts": now + 1},
            {"kind": "like", "user": "bob", "post": "p1", "ts": now + 2},
            {"kind": "like", "user": "carol", "post": "p1", "ts": now + 3},
        ]
        assert c.post("/v1/events", json=events, headers=H).status_code == 200
        yield c


def sign_in(c: TestClient, user: str) -> None:
    r = c.post("/web/session", json={"user": user, "token": c.tokens[user]}, headers=WEB)
    assert r.status_code == 200, r.text


class Controls(HTMLParser):
    """Form controls inside ``<div class="notif">`` and the ids that a ``<label for>`` names."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # >0 inside the notification block
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self.depth:
            if tag == "div":
                self.depth += 1
            if tag in ("input", "select", "textarea", "button"):
                self.controls.append({"tag": tag, **a})
            if tag == "label" and a.get("for"):
                self.labelled.add(str(a["for"]))
        elif tag == "div" and a.get("class") == "notif":
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == "div":
            self.depth -= 1


def test_page_loads_the_notification_script_under_the_strict_csp(client):
    anon = client.get("/")
    assert "notifications.js" not in anon.text and 'id="bell"' not in anon.text  # nobody signed in: no bell
    sign_in(client, "alice")
    r = client.get("/")
    assert r.status_code == 200 and 'data-user="alice"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "style-src 'self'" in csp
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", r.text, re.S)
    assert any('src="/static/notifications.js"' in attrs for attrs, _ in scripts)
    assert all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert '<link rel="stylesheet" href="/static/notifications.css">' in r.text
    assert not re.search(r"\son[a-z]+\s*=", r.text)  # no inline event handlers
    assert not re.search(r"\sstyle\s*=", r.text)  # no inline styles
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)  # nothing off this origin
    assert KEY not in r.text and client.tokens["alice"] not in r.text
    p = Controls()
    p.feed(r.text)
    assert {c.get("id") for c in p.controls} >= {"bell", "nset-daily_cap", "nset-digest_times", "nset-time_zone"}
    for c in p.controls:  # every control has a name: a <label for>, an aria-label, or its own text (buttons)
        if c["tag"] == "button":
            continue
        assert c.get("id") in p.labelled or c.get("aria-label"), c
    assert 'aria-label="Notifications"' in r.text  # the bell's name before the script adds the count
    for name, kind in (("notifications.js", "javascript"), ("notifications.css", "text/css")):
        s = client.get(f"/static/{name}")
        assert s.status_code == 200 and kind in s.headers["content-type"], name


def test_service_worker_is_served_from_the_root_under_the_pages_csp(client):
    """The page registers /sw.js with scope / : served by the app itself (no CDN), as JavaScript, from the root (a
    worker's largest scope is its own folder), allowed by the page's CSP (worker-src falls back to script-src
    'self'); the proxy takes the person's push subscriptions."""
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert sw.text == (WEB_DIR / "static" / "sw.js").read_text()
    assert 'addEventListener("push"' in sw.text and "importScripts" not in sw.text and "http" not in sw.text
    csp = sw.headers["content-security-policy"]
    assert "worker-src" not in csp and "script-src 'self'" in csp
    page = JS.read_text()
    assert 'register("/sw.js", { scope: "/" })' in page and "applicationServerKey" in page
    assert '"/v1/notifications/vapid-public-key"' in page
    sign_in(client, "alice")
    r = client.get("/")
    for control in ("nset-push-on", "nset-push-off"):
        assert f'id="{control}"' in r.text
    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    sub = {"endpoint": "https://push.example.org/a1", "keys": {"p256dh": b64(point), "auth": b64(b"0" * 16)}}
    assert client.post("/web/api/me/push-subscriptions", json=sub, headers=WEB).status_code == 201
    mine = client.get("/v1/users/alice/push-subscriptions", headers=H).json()["subscriptions"]
    assert mine == [{"endpoint": sub["endpoint"]}]
    sign_in(client, "bob")  # another person's session cannot forget alice's subscription
    gone = client.request("DELETE", "/web/api/me/push-subscriptions", json={"endpoint": sub["endpoint"]}, headers=WEB)
    assert gone.status_code == 404
    sign_in(client, "alice")
    gone = client.request("DELETE", "/web/api/me/push-subscriptions", json={"endpoint": sub["endpoint"]}, headers=WEB)
    assert gone.status_code == 200
    assert client.get("/v1/users/alice/push-subscriptions", headers=H).json() == {"subscriptions": []}


def test_the_script_writes_text_only_and_mirrors_the_kinds():
    js = JS.read_text()
    assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write", js)
    assert "eval(" not in js and "new Function" not in js
    assert not re.search(r"https?://", js)  # no CDN, no other origin
    assert "localStorage" not in js and "document.cookie" not in js
    block = re.search(r"const KIND_WORDS = \{(.*?)\};", js, re.S)
    assert block, "KIND_WORDS not found in notifications.js"
    pairs = re.findall(r'^\s*(\w+): "([^"]*)",', block.group(1), re.M)
    assert [k for k, _ in pairs] == list(KINDS)
    assert dict(pairs) == KIND_WORDS


@pytest.mark.parametrize("name", sorted(load_notification_policies()))
def test_statements_list_the_pushed_kinds_the_way_the_script_reads_them(name):
    """notifications.js ticks a kind by default when the policy's statement lists it under "What may be pushed to
    you:" as "- <words>": check that this is exactly the policy's pushed kinds."""
    pol = load_notification_policies()[name]
    lines = pol.describe().split("\n")
    at = next(i for i, line in enumerate(lines) if "What may be pushed to you:" in line)
    listed = []
    for line in lines[at + 1 :]:
        if not line.startswith("- "):
            break
        listed.append(line[2:].strip())
    words = {w: k for k, w in KIND_WORDS.items()}
    assert {words[w] for w in listed if w in words} == {k for k in KINDS if pol.kinds[k].push}


def test_the_allowed_paths():
    for ok in ("notifications", "notifications/read", "notifications/12/why", "notification-settings",
               "push-subscriptions"):  # fmt: skip
        assert ME_PATHS.match(ok), ok
    for no in ("notifications/x/why", "notifications/1", "notification-policies", "push-subscriptions/1",
               "notifications/1/why/x", "notifications/"):  # fmt: skip
        assert not ME_PATHS.match(no), no


def test_proxy_reaches_the_notifications_of_the_signed_in_person_only(client):
    me = "/web/api/me/"
    assert client.get(me + "notifications", headers=WEB).status_code == 401  # no session
    sign_in(client, "alice")
    assert client.get(me + "notifications").status_code == 403  # no X-Glassfeed-Web header
    r = client.get(me + "notifications", headers={**WEB, "Origin": "http://evil.example"})
    assert r.status_code == 403
    box = client.get(me + "notifications?limit=10", headers=WEB)
    assert box.status_code == 200 and box.headers["cache-control"] == "no-store"
    direct = client.get("/v1/users/alice/notifications?limit=10", headers=H).json()
    assert box.json() == direct and box.json()["unread"] == 2
    texts = sorted(i["text"] for i in direct["items"])
    assert texts == ["@bob and @carol liked your post", "@dan replied to your post"]
    reply = next(i for i in direct["items"] if i["kind"] == "reply")
    why = client.get(me + f"notifications/{reply['id']}/why", headers=WEB).json()
    assert why["rule"] == "immediate" and why["turn_off"]["body"] == {"kinds_off": ["reply"]}
    # settings through the proxy: a bad value names its field; a good one is kept
    bad = client.put(me + "notification-settings", json={"time_zone": "Nowhere/Town"}, headers=WEB)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "time_zone"
    ok = client.put(
        me + "notification-settings", json={"policy": "batched", "time_zone": "Europe/Paris"}, headers=WEB
    )  # fmt: skip
    assert ok.status_code == 200 and ok.json()["policy"] == "batched"
    got = client.get("/v1/users/alice/notification-settings", headers=H).json()
    assert got["settings"]["time_zone"] == "Europe/Paris"
    assert client.get(me + "notification-settings", headers=WEB).json() == got
    # nothing reaches past the person's own routes
    for path in ("notifications/..", "notifications/abc/why", "notification-policies", "../bob/notifications"):
        assert client.get(me + path, headers=WEB).status_code == 404, path
    # another person's session sees their own (empty) inbox and cannot explain alice's notification
    sign_in(client, "bob")
    assert client.get(me + "notifications", headers=WEB).json()["items"] == []
    assert client.get(me + f"notifications/{reply['id']}/why", headers=WEB).status_code == 404
    assert client.post(me + "notifications/read", json={}, headers=WEB).json() == {"marked": 0, "unread": 0}
    assert client.get("/v1/users/alice/notifications", headers=H).json()["unread"] == 2
    sign_in(client, "alice")
    assert client.post(me + "notifications/read", json={}, headers=WEB).json() == {"marked": 2, "unread": 0}


def test_an_open_through_the_proxy_reads_the_notification_and_trains_the_open_head(client):
    """What the page sends when an inbox item (``surface`` "inbox") or a clicked push (``/?n=<id>``, "push") is
    opened: the person's ``notification_open`` event naming the notification, through the proxy to their events.
    It is taken for the signed-in person only; the service marks the notification read; the open model's examples
    label it opened. An open naming someone else's notification is the sender's own event: it reads nothing of
    theirs and labels nothing."""
    me = "/web/api/me/"
    app = client.app
    direct = client.get("/v1/users/alice/notifications", headers=H).json()["items"]
    reply = next(i for i in direct if i["kind"] == "reply")
    like = next(i for i in direct if i["kind"] == "like")
    opened = {"kind": "notification_open", "request_id": reply["request_id"], "surface": "inbox"}
    assert reply["request_id"] == f"n{reply['id']}" and reply["push_at"] is not None  # pushed: a training example
    assert client.post(me + "events", json={"events": [opened]}, headers=WEB).status_code == 401  # no session
    sign_in(client, "bob")
    # bob may not speak for alice, and his own open naming her notification reads nothing of hers
    r = client.post(me + "events", json={"events": [{**opened, "user": "alice"}]}, headers=WEB)
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "user"
    assert client.post(me + "events", json={"events": [opened]}, headers=WEB).status_code == 200
    foreign = {**WEB, "Origin": "http://evil.example"}
    assert client.post(me + "events", json={"events": [opened]}, headers=foreign).status_code == 403
    assert client.get("/v1/users/alice/notifications", headers=H).json()["unread"] == 2
    assert opened_labels(app)[reply["id"]] is False  # bob's open labels nothing of alice's
    sign_in(client, "alice")
    r = client.post(me + "events", json={"events": [opened]}, headers=WEB)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    box = client.get(me + "notifications", headers=WEB).json()
    assert box["unread"] == 1
    assert {i["id"]: i["read"] for i in box["items"]} == {reply["id"]: True, like["id"]: False}
    held = client.get("/v1/users/alice/data", headers=H).json()["events"]
    opens = [(e["request_id"], e["surface"]) for e in held if e["kind"] == "notification_open"]
    assert opens == [(reply["request_id"], "inbox")]
    label = opened_labels(app)
    assert label[reply["id"]] is True  # the open model's examples see alice's open
    assert label.get(like["id"]) in (None, False)  # not opened (None: not pushed, so not an example)


def opened_labels(app) -> dict[int, bool]:
    """Notification id -> the open head's label, as ``glassfeed notifications train`` would read it now."""
    from glassfeed.notifications.model import examples

    svc, store = app.state.notifications, app.state.store
    policy_of = {u: svc.policy_for(u) for u in store.load_users()["idx"].tolist()}
    ex = examples(store, time.time() + 60, policy_of, app.state.settings.notifications)
    return dict(zip(ex.ids.tolist(), ex.y["open"].tolist()))
