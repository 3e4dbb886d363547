"""The notification bell, the inbox, "Why did I get this?" and the notification settings in real headless Chromium
against a real uvicorn server (issue 14, item 8): alice signs in with her token, sees the unread count on the
bell, reads why a reply reached her, opens it from the inbox (her ``notification_open`` event reaches the server
and the item is read), turns likes off from a why-panel, changes her settings (a bad time zone is
shown next to its field; the reply's why still names the policy that decided it) and marks everything read. Each
effect is checked through the API too. A screenshot goes to ``artifacts/``.

The server is our own small store (no training: the feed falls back to recency), wall clock, with
``engagement_push`` as the default notification policy so that switching to ``batched`` is a real change."""

from __future__ import annotations

import time

import httpx
import pytest

from live_server import start_server

KEY = "notifbrowser-service-key"
SVC = {"Authorization": f"Bearer {KEY}"}
PEOPLE = ("alice", "bob", "carol", "dan")
BROWSER_ZONE = "America/Santiago"  # the page offers the browser's time zone until one is saved
# a handle is written into the notification text: it must come out as text, never as HTML
HOSTILE_HANDLE = "<img src=x onerror=window.pwned=1>"


@pytest.fixture(scope="module")
def notif_server(tmp_path_factory):
    """(base_url, tokens): uvicorn serving create_app (web page included); alice's post p1 has a reply from dan
    (whose handle looks like HTML) and likes from bob and carol."""
    from glassfeed.api.app import create_app
    from glassfeed.settings import load_settings

    folder = tmp_path_factory.mktemp("notifweb")
    settings = load_settings(
        store={"path": folder / "notif.db"},
        api={"key": KEY},
        serving={"clock": "wall"},
        notifications={"default_policy": "engagement_push"},
    )
    app = create_app(settings)
    base, stop = start_server(app)
    with httpx.Client(base_url=base, timeout=10) as c:
        users = [{"id": u, "handle": HOSTILE_HANDLE if u == "dan" else u} for u in PEOPLE]
        r = c.post("/v1/users", json={"users": users}, headers=SVC)
        assert r.status_code in (200, 201), r.text
        tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        now = time.time() - 120
        assert c.post("/v1/posts", json=[{"id": "p1", "author": "alice", "text": "hello", "created_at": now}],
                      headers=SVC).status_code == 201  # fmt: skip
        events = [
            {"kind": "reply", "user": "dan", "post": "p1", "ts": now + 1},
            {"kind": "like", "user": "bob", "post": "p1", "ts": now + 2},
            {"kind": "like", "user": "carol", "post": "p1", "ts": now + 3},
        ]
        assert c.post("/v1/events", json=events, headers=SVC).status_code == 200
    yield base, tokens
    stop()


@pytest.fixture()
def tz_page(browser):
    """A page whose browser time zone is BROWSER_ZONE; fails the test on any Content-Security-Policy report."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=BROWSER_ZONE)
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    blocked: list[str] = []
    pg.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    yield pg
    ctx.close()
    assert not blocked, blocked


def settings_of(base: str, user: str) -> dict:
    return httpx.get(f"{base}/v1/users/{user}/notification-settings", headers=SVC).json()


def opens_held(base: str, user: str) -> list[tuple[str, str]]:
    """(request_id, surface) of the person's notification_open events the server holds, oldest first."""
    events = httpx.get(f"{base}/v1/users/{user}/data", headers=SVC).json()["events"]
    return sorted((e["request_id"], e["surface"]) for e in events if e["kind"] == "notification_open")


class _AnyNumber:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, (int, float)) and not isinstance(other, bool)


ANY_NUMBER = _AnyNumber()  # the event's time: the feed's clock, whatever it reads


def test_bell_inbox_why_settings_and_mark_all_read(notif_server, tz_page, artifacts):
    from playwright.sync_api import expect

    base, tokens = notif_server
    page = tz_page
    page.goto(base + "/")
    page.fill("#token-user", "alice")
    page.fill("#token-value", tokens["alice"])
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-user=alice]")

    # the bell: its count, for eyes and for screen readers
    bell = page.locator("#bell")
    expect(bell).to_have_attribute("aria-label", "Notifications: 2 unread")
    expect(page.locator("#bell-count")).to_have_text("2")
    expect(bell).to_have_attribute("aria-expanded", "false")

    # the inbox: each notification's text, time and read state
    bell.click()
    expect(bell).to_have_attribute("aria-expanded", "true")
    items = page.locator("#notif-list .notif-item")
    expect(items).to_have_count(2)
    expect(page.locator("#notif-list .notif-item.unread")).to_have_count(2)
    like = page.locator(".notif-item[data-kind=like]")
    reply = page.locator(".notif-item[data-kind=reply]")
    expect(like.locator(".notif-text")).to_have_text("@bob and @carol liked your post")
    expect(reply.locator(".notif-text")).to_have_text(f"@{HOSTILE_HANDLE} replied to your post")  # as text
    assert page.evaluate("window.pwned") is None and page.locator("#notif-list img").count() == 0
    expect(reply.locator(".notif-read")).to_have_text("unread")
    assert reply.locator("time").get_attribute("datetime")
    expect(reply.locator(".notif-push")).to_contain_text("push scheduled for")  # no delivery worker runs here
    assert reply.get_attribute("data-push") == "scheduled"

    # "Why did I get this?" on the reply: source, chance x value vs threshold, the rule in words, the policy
    reply.get_by_role("button", name="Why did I get this?").click()
    why = reply.locator(".notif-why")
    expect(why).to_be_visible()
    expect(why.locator(".notif-rule")).to_have_text("Pushed as soon as it happened.")
    expect(why.locator(".notif-rule")).to_have_attribute("data-rule", "immediate")
    expect(why).to_contain_text("Replies to your posts: 1 event")
    expect(why.locator(".notif-worth")).to_contain_text("chance you open it 0.30 × how much it matters 1.0 = 0.300")
    expect(why.locator(".notif-worth")).to_contain_text("at or above the push threshold 0.020 when it was decided")
    expect(why.locator(".notif-policy")).to_contain_text("engagement_push")
    expect(why.locator(".notif-policy-now")).to_have_count(0)  # her policy now is the deciding one

    # opening the reply (a click on its text): her notification_open event naming it, through the proxy; it is read
    reply_id = int(reply.get_attribute("data-id"))
    with page.expect_request(lambda r: r.url.endswith("/web/api/me/events")) as sent:
        reply.locator(".notif-open").click()
    assert sent.value.post_data_json["events"] == [
        {"kind": "notification_open", "request_id": f"n{reply_id}", "surface": "inbox", "ts": ANY_NUMBER}
    ]
    assert sent.value.response().status == 200
    expect(reply).to_have_attribute("data-read", "true")
    expect(reply.locator(".notif-read")).to_have_text("read")
    expect(bell).to_have_attribute("aria-label", "Notifications: 1 unread")
    expect(like).to_have_attribute("data-read", "false")
    # p1 is alice's own post, not in her feed: the page says so and keeps the inbox open, focus on the item
    status = "Opened and marked read. Its post is not in your feed on this page."
    expect(page.locator("#notif-status")).to_have_text(status)
    expect(reply.locator(".notif-open")).to_be_focused()
    assert opens_held(base, "alice") == [(f"n{reply_id}", "inbox")]
    box = httpx.get(f"{base}/v1/users/alice/notifications", headers=SVC).json()
    assert box["unread"] == 1 and {i["id"]: i["read"] for i in box["items"]}[reply_id] is True

    # turn likes off from the like's why-panel: one click PUTs the why's turn_off body
    like.get_by_role("button", name="Why did I get this?").click()
    off = like.locator(".notif-turn-off")
    expect(off).to_contain_text("Turn off this kind (likes of your posts)")
    off.click()
    expect(like.locator(".notif-why .status")).to_contain_text("Likes of your posts will no longer be pushed")
    assert settings_of(base, "alice")["settings"]["kinds_off"] == ["like"]

    # settings: the policies in plain language, kinds pushed, digest times, time zone from the browser
    page.click("#notif-settings-toggle")
    form = page.locator("#notif-settings")
    expect(form).to_be_visible()
    expect(page.locator("#nset-policy-engagement_push")).to_be_checked()
    expect(page.locator("#nset-statement")).to_contain_text("They are pushed as soon as they exist.")
    expect(page.locator("#nset-kind-like")).not_to_be_checked()  # turned off just now
    expect(page.locator("#nset-kind-reply")).to_be_checked()
    expect(page.locator("#nset-time_zone")).to_have_value(BROWSER_ZONE)
    expect(page.locator("#nset-hint-tz")).to_contain_text("From your browser")
    # every control in the panel has a name (label, aria-label or own text)
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('#notif-panel input, #notif-panel select, #notif-panel button')]
             .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
             .map(el => el.id || el.outerHTML)"""
    )
    assert unnamed == []

    page.check("#nset-policy-batched")
    expect(page.locator("#nset-statement")).to_have_attribute("data-policy", "batched")
    expect(page.locator("#nset-statement")).to_contain_text("pushed in digests at 09:00, 13:00, 19:00")
    expect(page.locator("#nset-kind-affinity_post")).not_to_be_checked()  # batched does not push it
    expect(page.locator("#nset-kind-like")).not_to_be_checked()  # still off: her choice
    page.fill("#nset-digest_times", "08:30")
    page.fill("#nset-time_zone", "Nowhere/Town")
    page.click("#nset-save")
    err = page.locator("#nset-err-time_zone")
    expect(err).to_be_visible()
    expect(err).to_contain_text("unknown time zone")
    expect(page.locator("#nset-time_zone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#nset-status")).to_contain_text("Not saved")
    assert settings_of(base, "alice")["policy"] == "engagement_push"  # nothing saved
    page.screenshot(path=str(artifacts / "notifications-settings-error.png"), full_page=True)

    page.fill("#nset-time_zone", "Europe/Paris")
    page.click("#nset-save")
    expect(page.locator("#nset-status")).to_contain_text("Saved")
    expect(err).to_be_hidden()
    expect(page.locator("#nset-time_zone")).not_to_have_attribute("aria-invalid", "true")
    got = settings_of(base, "alice")
    assert got["policy"] == "batched"
    assert got["settings"] == {
        "policy": "batched",
        "kinds_off": ["like"],
        "digest_times": ["08:30"],
        "time_zone": "Europe/Paris",
    }
    assert "08:30" in got["statement"]
    expect(page.locator("#nset-hint-tz")).to_have_text("Your saved time zone.")

    # the reply was decided under engagement_push: its why still says so, beside her policy now
    btn = reply.get_by_role("button", name="Why did I get this?")
    if btn.get_attribute("aria-expanded") == "true":
        btn.click()
    btn.click()
    expect(why.locator(".notif-policy")).to_have_attribute("data-policy", "engagement_push")
    expect(why.locator(".notif-rule")).to_have_attribute("data-rule", "immediate")
    expect(why.locator(".notif-worth")).to_contain_text("push threshold 0.020 when it was decided")
    expect(why.locator(".notif-policy-now")).to_have_attribute("data-policy", "batched")
    expect(why.locator(".notif-policy-now")).to_contain_text("Three digests a day (batched)")

    # mark all read: the count goes to 0, the items lose their unread state
    page.click("#notif-read-all")
    expect(bell).to_have_attribute("aria-label", "Notifications: none unread")
    expect(page.locator("#bell-count")).to_be_hidden()
    expect(page.locator("#notif-list .notif-item.unread")).to_have_count(0)
    expect(reply.locator(".notif-read")).to_have_text("read")
    box = httpx.get(f"{base}/v1/users/alice/notifications", headers=SVC).json()
    assert box["unread"] == 0 and all(i["read"] for i in box["items"])
    page.screenshot(path=str(artifacts / "notifications-inbox.png"), full_page=True)

    # Escape closes the panel and gives focus back to the bell
    page.keyboard.press("Escape")
    expect(page.locator("#notif-panel")).to_be_hidden()
    expect(bell).to_be_focused()


def _browser_push_keys() -> dict[str, str]:
    """A subscription's keys as a browser makes them: a P-256 public point and a 16-byte auth secret (base64url)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return {"p256dh": b64(point), "auth": b64(b"fedcba9876543210")}


#: Replaces the browser's push service in the page: headless Chromium has none to subscribe with (its
#: ``PushManager.subscribe`` needs a push service behind it), so ``subscribe`` and ``getSubscription`` are stubbed
#: on ``PushManager.prototype``; everything else (the service worker's registration, the permission, the page's
#: calls to the server) is the browser's own.
PUSH_STUB = """
(() => {
  const endpoint = ENDPOINT, keys = KEYS;
  window.__push = { subscription: null, calls: [], unsubscribed: 0 };
  PushManager.prototype.subscribe = async function (opts) {
    const k = new Uint8Array(opts.applicationServerKey);
    window.__push.calls.push({ userVisibleOnly: opts.userVisibleOnly, key: Array.from(k) });
    window.__push.subscription = {
      endpoint, expirationTime: null,
      toJSON() { return { endpoint, expirationTime: null, keys }; },
      async unsubscribe() { window.__push.subscription = null; window.__push.unsubscribed += 1; return true; },
    };
    return window.__push.subscription;
  };
  PushManager.prototype.getSubscription = async function () { return window.__push.subscription; };
})();
"""


def test_web_push_sign_up_and_unsubscribe(notif_server, browser):
    """Turn push on from the notification settings: the page registers the app's service worker (/sw.js, scope /),
    subscribes with the server's VAPID public key and POSTs the subscription, which the server then lists; turning
    push off DELETEs it and unsubscribes the browser.

    What is real and what is not: headless Chromium has no push service, so ``PushManager.subscribe`` (and
    ``getSubscription``) are stubbed in the page (``PUSH_STUB``) to return a subscription with a made-up https
    endpoint and a real P-256 key; the test checks the arguments the page passed to it. The service worker's
    registration and scope, the notification permission, and every request to the server are the real ones."""
    import base64
    import json

    from playwright.sync_api import expect

    base, tokens = notif_server
    # the service worker as the app serves it, and the public key it subscribes with
    sw = httpx.get(base + "/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert 'addEventListener("push"' in sw.text and "showNotification" in sw.text
    assert sw.headers["cache-control"] == "no-cache"
    key = httpx.get(base + "/v1/notifications/vapid-public-key").json()["key"]
    key_bytes = list(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    assert len(key_bytes) == 65 and key_bytes[0] == 4  # an uncompressed P-256 point

    endpoint = "https://push.example.test/send/alice-1"
    keys = _browser_push_keys()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.grant_permissions(["notifications"], origin=base)
    ctx.add_init_script(PUSH_STUB.replace("ENDPOINT", json.dumps(endpoint)).replace("KEYS", json.dumps(keys)))
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(base + "/")
        page.fill("#token-user", "alice")
        page.fill("#token-value", tokens["alice"])
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("body[data-user=alice]")
        page.click("#bell")
        page.click("#notif-settings-toggle")
        on, off = page.locator("#nset-push-on"), page.locator("#nset-push-off")
        expect(page.locator("#nset-push-status")).to_have_text("Push notifications are off in this browser.")
        expect(off).to_be_hidden()

        with page.expect_request(lambda r: r.url.endswith("/web/api/me/push-subscriptions")) as posted:
            on.click()
        expect(page.locator("#nset-push-status")).to_have_text("Push notifications are on in this browser.")
        req = posted.value
        assert req.method == "POST"
        assert req.post_data_json == {"endpoint": endpoint, "expirationTime": None, "keys": keys}  # toJSON()
        assert req.response().status == 201
        calls = page.evaluate("window.__push.calls")
        assert calls == [{"userVisibleOnly": True, "key": key_bytes}]  # subscribed with the server's VAPID key
        reg = page.evaluate(
            """async () => { const r = await navigator.serviceWorker.getRegistration('/');
                             const w = r && (r.active || r.waiting || r.installing);
                             return r && [r.scope, w && w.scriptURL]; }"""
        )
        assert reg == [base + "/", base + "/sw.js"]
        listed = httpx.get(f"{base}/v1/users/alice/push-subscriptions", headers=SVC).json()
        assert listed == {"subscriptions": [{"endpoint": endpoint}]}
        expect(on).to_be_hidden()

        with page.expect_request(lambda r: r.url.endswith("/web/api/me/push-subscriptions")) as deleted:
            off.click()
        expect(page.locator("#nset-push-status")).to_have_text("Push notifications are off in this browser.")
        assert deleted.value.method == "DELETE" and deleted.value.post_data_json == {"endpoint": endpoint}
        assert deleted.value.response().status == 200
        assert page.evaluate("window.__push.unsubscribed") == 1
        assert httpx.get(f"{base}/v1/users/alice/push-subscriptions", headers=SVC).json() == {"subscriptions": []}
        expect(on).to_be_visible()
    finally:
        ctx.close()


#: Runs sw.js's own code on a stand-in for the worker's global scope (``self``), in a blank page (no CSP there), and
#: calls its "notificationclick" handler as the browser would: what does it open, or which window does it move?
SW_CLICK = """
async ([src, data, windows]) => {
  const handlers = {}, calls = [];
  const self = {
    location: { origin: "http://app.test" },
    addEventListener: (type, f) => { handlers[type] = f; },
    skipWaiting() {}, registration: {},
    clients: {
      claim: async () => {},
      matchAll: async (opts) => { calls.push(["matchAll", opts]); return windows.map((w) => ({
        url: w, focus: async () => { calls.push(["focus", w]); },
        navigate: async (u) => { calls.push(["navigate", w, u]); return {}; } })); },
      openWindow: async (u) => { calls.push(["openWindow", u]); },
    },
  };
  new Function("self", src)(self);
  let done = null, closed = 0;
  handlers.notificationclick({ notification: { data, close() { closed += 1; } }, waitUntil(p) { done = p; } });
  await done;
  return { closed, calls };
}
"""


def test_push_click_opens_the_page_that_sends_the_open_once(notif_server, browser):
    """A clicked push: sw.js opens (or moves its window to) ``/?n=<ids>`` from the message's ``notifications``; the
    page, signed in (here after signing in: the push came while signed out), takes ``n`` off its URL, sends one
    ``notification_open`` per id (``surface`` "push") once, and goes to the notification's post when its feed shows it.

    What is real and what is not: headless Chromium has no push service, so no real push arrives and no system
    notification can be clicked. The service worker's click handler is run on a stand-in for its global scope
    (``SW_CLICK``) to check the URL it opens; the page's part is real: it loads ``/?n=<id>`` as the worker would
    open it, against the real server, and the server's records are checked."""
    from playwright.sync_api import expect

    base, tokens = notif_server
    sw = httpx.get(base + "/sw.js").text
    with httpx.Client(base_url=base, headers=SVC, timeout=10) as c:
        assert c.post("/v1/events", json=[{"kind": "follow", "user": "bob", "target_user": "carol"}]).status_code == 200
        r = c.post("/v1/posts", json=[{"id": "p2", "author": "carol", "text": "look at this, @bob",
                                       "created_at": time.time() - 30}])  # fmt: skip
        assert r.status_code == 201, r.text
        (mention,) = [i for i in c.get("/v1/users/bob/notifications").json()["items"] if i["kind"] == "mention"]
    assert mention["post"] == "p2" and not mention["read"]
    nid = mention["id"]

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    try:
        # the worker's click: a window of its own is moved to the URL; with none, a new window opens at it
        page.goto("about:blank")
        one = page.evaluate(SW_CLICK, [sw, {"notifications": [nid]}, ["http://app.test/"]])
        assert one["closed"] == 1 and one["calls"] == [
            ["matchAll", {"type": "window"}],
            ["focus", "http://app.test/"],
            ["navigate", "http://app.test/", f"/?n={nid}"],
        ]
        digest = page.evaluate(SW_CLICK, [sw, {"notifications": [nid, nid + 7]}, ["http://other.test/"]])
        assert digest["calls"][-1] == ["openWindow", f"/?n={nid},{nid + 7}"]  # a digest names each notification
        junk = page.evaluate(SW_CLICK, [sw, {"notifications": ["1;x", -3, 1.5]}, []])
        assert junk["calls"][-1] == ["openWindow", "/"]

        # the page the worker opens, signed out: sign in keeps ?n=, and the open is sent once, n gone from the URL
        events: list[dict] = []
        mine = lambda r: r.url.endswith("/web/api/me/events")  # noqa: E731
        page.on("request", lambda r: events.extend(r.post_data_json["events"]) if mine(r) else None)
        page.goto(f"{base}/?n={nid}")
        page.fill("#token-user", "bob")
        page.fill("#token-value", tokens["bob"])
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("body[data-user=bob]")
        expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications: none unread")
        page.wait_for_function("() => !location.search.includes('n=')")
        assert page.url == base + "/"
        assert opens_held(base, "bob") == [(f"n{nid}", "push")]
        opened = [e for e in events if e["kind"] == "notification_open"]
        assert opened == [{"kind": "notification_open", "request_id": f"n{nid}", "surface": "push", "ts": ANY_NUMBER}]
        box = httpx.get(f"{base}/v1/users/bob/notifications", headers=SVC).json()
        assert box["unread"] == 0 and box["items"][0]["read"]
        # carol's post is in bob's feed: the page goes to it
        post = page.locator("#feed-list article.post[data-post=p2]")
        expect(post).to_be_focused()
        expect(post).to_have_class("post notif-target")
        expect(page.locator("#notif-panel")).to_be_hidden()

        # a reload (the URL has no n any more) sends nothing again
        page.reload()
        page.wait_for_selector("body[data-feed-loads]", state="attached")  # the feed clock the open would wait for
        page.wait_for_timeout(500)
        assert [e for e in events if e["kind"] == "notification_open"] == opened
        assert opens_held(base, "bob") == [(f"n{nid}", "push")]
    finally:
        ctx.close()
