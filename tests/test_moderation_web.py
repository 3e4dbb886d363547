"""The moderation web pages without a browser: /moderation and /statements are served under the strict CSP with
no inline script, their JS and CSS are local files, the policy's vocabulary is public JSON, and the statements
proxy keeps a person to their own statements behind the same guards as the web page's /web/api/me proxy."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings
from glassfeed.web import moderation
from glassfeed.web.routes import WEB_DIR

KEY = "modweb-service-key"
H = {"Authorization": f"Bearer {KEY}"}
MODS = {"ana": "modweb-key-ana"}
ANA = {"Authorization": f"Bearer {MODS['ana']}"}
WEB = {"X-Glassfeed-Web": "1"}
LOCAL = "http://localhost:8000"
PAGES = ("/moderation", "/statements")
DECISION = {
    "post": "a1",
    "action": "drop",
    "ground": "incompatible",
    "grounds_explanation": "Terms 4.2: no harassment",
    "category": "harassment",
    "facts": "Insults aimed at one person <b>repeatedly</b>.",
}


@pytest.fixture()
def client(tmp_path):
    settings = load_settings(
        store={"path": tmp_path / "mw.db"},
        api={"key": KEY},
        moderation={"moderator_keys": MODS},
        serving={"clock": "wall"},
    )
    app = create_app(settings)
    moderation.install(app)
    moderation.install(app)  # idempotent (the app may install it too)
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as c:
        users = [{"id": u} for u in ("alice", "bob")]
        c.tokens = {u["id"]: u["token"] for u in c.post("/v1/users", json={"users": users}, headers=H).json()["users"]}
        now = time.time() - 60
        posts = [{"id": "a1", "author": "alice", "text": "<script>alert(1)</script> hi", "created_at": now}]
        assert c.post("/v1/posts", json=posts, headers=H).status_code == 201
        yield c


def sign_in(c, user):
    r = c.post("/web/session", json={"user": user, "token": c.tokens[user]}, headers=WEB)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_served_under_the_strict_csp_without_inline_script(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["cache-control"] == "no-store"
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", r.text, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", r.text)  # no inline event handlers
    assert not re.search(r"\sstyle\s*=", r.text)  # no inline styles (style-src 'self')
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)  # no CDN, nothing off this origin
    assert KEY not in r.text and MODS["ana"] not in r.text


def test_static_files_are_local_and_the_js_never_writes_html(client):
    for name, kind in (("moderation.js", "javascript"), ("moderation.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    js = (WEB_DIR / "static" / "moderation.js").read_text()
    assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write", js)
    assert "eval(" not in js and "new Function" not in js
    assert not re.search(r"https?://", js)
    assert "localStorage" not in js and "document.cookie" not in js  # the key stays in sessionStorage
    for tpl in ("moderation.html", "statements.html"):
        text = (WEB_DIR / "templates" / tpl).read_text()
        assert not re.search(r"https?://", text) and "|safe" not in text


def test_categories_are_the_policys(client):
    r = client.get("/v1/moderation/categories")  # public, like the policy text
    assert r.status_code == 200
    v = r.json()
    pol = client.app.state.moderation.policy
    assert [c["key"] for c in v["categories"]] == list(pol.categories)
    assert {c["key"] for c in v["categories"] if c["illegal"]} == {k for k, c in pol.categories.items() if c.illegal}
    assert [a["key"] for a in v["actions"]] == ["none", "label", "downrank", "followers_only", "interstitial", "drop"]
    assert set(v["surfaces"]) == {"home", "search", "notifications", "public"}
    assert {g["key"] for g in v["grounds"]} == {"illegal", "incompatible"}
    assert v["appeal_window_days"] == pol.appeal_window_days
    assert "/v1/moderation/categories" in client.get("/openapi.json").json()["paths"]


def test_statements_page_shows_the_signed_in_person(client):
    assert 'data-user=""' in client.get("/statements").text
    sign_in(client, "alice")
    assert 'data-user="alice"' in client.get("/statements").text


def test_statements_proxy_guards_and_appeal(client):
    sid = client.post("/v1/moderation/decisions", json={"decisions": [DECISION]}, headers=ANA).json()["statements"][0]
    sid = sid["id"]
    assert client.get("/web/api/statements").status_code == 403  # no custom header
    assert client.get("/web/api/statements", headers=WEB).status_code == 401  # no session
    assert client.get("/web/api/statements", headers={**WEB, "Origin": "https://evil.example"}).status_code == 403
    sign_in(client, "alice")
    r = client.get("/web/api/statements", headers=WEB)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    mine = r.json()
    assert mine["user"] == "alice" and sid in [s["id"] for s in mine["statements"]]
    one = client.get(f"/web/api/statements/{sid}", headers=WEB).json()
    assert one["decision_facts"] == DECISION["facts"] and one["category"] == "harassment"
    r = client.post(f"/web/api/statements/{sid}/appeals", json={"text": "It was a joke."}, headers=WEB)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open"
    again = client.post(f"/web/api/statements/{sid}/appeals", json={"text": "again"}, headers=WEB)
    assert again.status_code == 409  # the API's own answer, passed through
    # bob, signed in, reads only his own statements: alice's are refused by the API's object check
    sign_in(client, "bob")
    assert client.get("/web/api/statements", headers=WEB).json()["statements"] == []
    assert client.get(f"/web/api/statements/{sid}", headers=WEB).status_code == 403
    r = client.post(f"/web/api/statements/{sid}/appeals", json={"text": "me too"}, headers=WEB)
    assert r.status_code == 403
