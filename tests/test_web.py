"""The web layer without a browser: page, sessions (demo and token), the same-origin proxy's guards,
data deletion through the proxy, /audit, and "no CDN, no service key in what the browser gets"."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings
from glassfeed.sim.generate import generate_network
from glassfeed.store import open_store
from glassfeed.web.routes import COOKIE, WEB_DIR, install

KEY = "web-unit-test-service-key"
WEB = {"X-Glassfeed-Web": "1"}
LOCAL = "http://localhost:8000"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small generated network (untrained: the feed falls back to recency) and u0's token."""
    folder = tmp_path_factory.mktemp("webunit")
    net = generate_network(120, 3, 11)
    end = max(float(net.events.ts.max()), float(net.post_created.max())) + 60.0
    store = open_store(folder / "w.db", "NORMAL")
    res = write_network(net, Ingestor(store, clock=lambda: end))
    store.close()
    (folder / "gf.toml").write_text('[serving]\nclock = "data"\n')
    return folder, res.first_token


def make_client(built, demo: bool) -> TestClient:
    folder, _ = built
    app = create_app(load_settings(folder / "gf.toml", store={"path": folder / "w.db"}, api={"key": KEY}))
    install(app, demo=demo)
    install(app, demo=demo)  # idempotent: a second call (e.g. from create_app later) changes nothing
    return TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000))  # demo sign-in needs a loopback client


@pytest.fixture()
def demo(built):
    with make_client(built, True) as c:
        yield c


@pytest.fixture()
def prod(built):
    with make_client(built, False) as c:
        yield c


def test_demo_page_signs_in_with_a_strict_httponly_cookie_and_never_shows_the_key(demo):
    r = demo.get("/?user=u3")
    assert r.status_code == 200 and 'data-user="u3"' in r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert re.search(r'<select id="user-select".*?<option value="u3" selected>', r.text, re.S)
    assert 'for="policy"' in r.text and "chronological" in r.text
    for f in [*WEB_DIR.joinpath("static").iterdir(), *WEB_DIR.joinpath("templates").iterdir()]:
        assert KEY not in demo.get(f"/static/{f.name}").text
    assert KEY not in r.text
    feed = demo.get("/web/api/me/feed?limit=5", headers=WEB)
    assert feed.status_code == 200 and feed.json()["user"] == "u3" and len(feed.json()["items"]) == 5


def test_static_assets_are_local_no_cdn():
    for f in [*WEB_DIR.joinpath("static").iterdir(), *WEB_DIR.joinpath("templates").iterdir()]:
        text = f.read_text("utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), f.name
        assert "@import" not in text and "url(http" not in text, f.name


def test_proxy_guards(demo):
    demo.get("/?user=u4")
    assert demo.get("/web/api/me/prefs").status_code == 403  # no custom header: what a cross-site form can send
    bad_origin = {**WEB, "Origin": "http://evil.example"}
    assert demo.delete("/web/api/me/data", headers=bad_origin).status_code == 403
    assert demo.get("/web/api/me/prefs", headers={**WEB, "Origin": LOCAL}).status_code == 200
    for path in ("../u5/data", "feed/../../u5/why", "admin", "feed/p1/why/x", "", "data/extra"):
        assert demo.get(f"/web/api/me/{path}", headers=WEB).status_code == 404, path
    fresh = TestClient(demo.app, base_url=LOCAL, client=("127.0.0.1", 50001))
    assert fresh.get("/web/api/me/prefs", headers=WEB).status_code == 401  # no session


def test_token_sign_in_when_demo_is_off(prod, built):
    _, token = built
    page = prod.get("/")
    assert "Sign in with your user id and token" in page.text and COOKIE not in page.headers.get("set-cookie", "")
    assert prod.post("/web/session", json={"user": "u1"}, headers=WEB).status_code == 403  # no demo by name
    assert prod.post("/web/session", json={"user": "u1", "token": token}, headers=WEB).status_code == 401
    assert prod.post("/web/session", json={"user": "u0", "token": token}).status_code == 403  # no header
    r = prod.post("/web/session", json={"user": "u0", "token": token}, headers=WEB)
    assert r.status_code == 200 and r.json() == {"user": "u0", "mode": "token"}
    assert prod.get("/web/api/me/prefs", headers=WEB).status_code == 200
    assert 'data-user="u0"' in prod.get("/?user=u7").text  # ?user= switches people only in demo mode
    prod.delete("/web/session", headers=WEB)
    assert prod.get("/web/api/me/prefs", headers=WEB).status_code == 401


def test_events_controls_and_delete_through_the_proxy(demo):
    app = demo.app
    demo.get("/?user=u6")
    item = demo.get("/web/api/me/feed?limit=3", headers=WEB).json()["items"][0]
    why = demo.get(f"/web/api/me/feed/{item['post']}/why", headers=WEB).json()
    assert why["post"] == item["post"] and why["reason"] == item["reason"]
    ev = {"events": [{"kind": "like", "post": item["post"]}]}
    assert demo.post("/web/api/me/events", json=ev, headers=WEB).json()["accepted"] == 1
    ev_other = {"events": [{"kind": "like", "post": item["post"], "user": "u9"}]}
    assert demo.post("/web/api/me/events", json=ev_other, headers=WEB).status_code == 403  # only as oneself
    assert demo.put("/web/api/me/muted-words", json={"words": ["zebra"]}, headers=WEB).json()["words"] == ["zebra"]
    bad = demo.put("/web/api/me/prefs", json={"policy": "engagement", "weights": {"reply": 999}}, headers=WEB)
    assert bad.status_code == 422 and "outside the allowed range" in bad.json()["error"]

    store, idx = app.state.store, app.state.store.user_idx("u6")
    assert any(e[2] == 4 for e in store.user_events(idx, 100))  # the like (EventKind.LIKE) is stored
    dl = demo.get("/web/api/me/data", headers=WEB)
    assert "attachment" in dl.headers["content-disposition"] and dl.json()["muted_words"] == ["zebra"]
    gone = demo.delete("/web/api/me/data", headers=WEB).json()["deleted"]
    assert gone["events"] > 0
    assert store.user_events(idx, 100) == []
    data = demo.get("/web/api/me/data", headers=WEB).json()
    assert data["events"] == [] and data["muted_words"] == [] and data["counts"]["events"] == 0


def test_audit_missing_then_served(demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLASSFEED_AUDIT_REPORT", raising=False)
    assert demo.get("/audit", follow_redirects=False).status_code == 307
    r = demo.get("/audit/")
    assert r.status_code == 404 and "No simulation report yet" in r.text and "glassfeed simulate" in r.text

    (tmp_path / "secret.txt").write_text("no")
    old = tmp_path / "docs" / "simulation" / "report.html"
    old.parent.mkdir(parents=True)
    old.write_text("<h1>old report</h1>")
    r = demo.get("/audit/")
    assert r.status_code == 200 and "old report" in r.text
    new = tmp_path / "var" / "simulation" / "run2" / "report.html"
    new.parent.mkdir(parents=True)
    new.write_text('<h1>new report</h1><img src="plot.png">')
    (new.parent / "plot.png").write_bytes(b"\x89PNG")
    assert "new report" in demo.get("/audit/").text  # the newest wins
    assert demo.get("/audit/plot.png").content == b"\x89PNG"
    assert demo.get("/audit/..%2F..%2F..%2Fsecret.txt").status_code == 404
    elsewhere = tmp_path / "elsewhere" / "latest.html"  # a place only the settings name
    elsewhere.parent.mkdir()
    elsewhere.write_text("<h1>named report</h1>")
    demo.app.state.settings = demo.app.state.settings.replace(web={"audit_report": str(elsewhere)})
    assert "named report" in demo.get("/audit/").text
