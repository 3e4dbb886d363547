"""The ad lever's web parts without a browser: the public ad repository page (``/ad-library``: no login, the JSON
API's answers rendered on the server, its search by advertiser, country, period and political), the feed page's
``/web/api/ads/...`` proxy (the same guards as ``/web/api/me/...``, the person from the session) and the page's
assets (local files, the footer's link). The browser side is tests/browser/test_ads_browser.py."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings
from glassfeed.web import ads as ads_web
from glassfeed.web.routes import WEB_DIR

KEY = "adsweb-service-key"
H = {"Authorization": f"Bearer {KEY}"}
ADVERTISERS = {"acme": "adsweb-acme-key", "civic": "adsweb-civic-key"}
WEB = {"X-Glassfeed-Web": "1"}
LOCAL = "http://localhost:8000"


def campaign(now: float, **kw):
    base = {
        "name": "Pans",
        "on_behalf_of": "Acme Pans GmbH",
        "paid_by": "Acme Holding",
        "objective": "clicks",
        "bid": 0.8,
        "daily_budget": 50,
        "lifetime_budget": 500,
        "start": now - 3600,
        "creatives": ["ad-acme"],
        "targeting": {"countries": ["DE"], "topics": ["cooking"]},
    }
    return {**base, **kw}


@pytest.fixture()
def client(tmp_path):
    """vera (DE, into cooking) follows writer (25 recent posts) and reads the chronological feed; acme targets DE
    and cooking (per click), civic runs an untargeted political ad (per 1,000 impressions); both creatives are a
    day old and from accounts vera does not follow, so they never appear on her page as posts."""
    settings = load_settings(
        store={"path": tmp_path / "aw.db"},
        api={"key": KEY},
        serving={"clock": "wall"},
        ads={"advertiser_keys": ADVERTISERS},
    )
    app = create_app(settings)
    ads_web.install(app)
    ads_web.install(app)  # idempotent (create_app installs it too)
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as c:
        users = [{"id": "vera", "interests": ["cooking"]}, {"id": "otto"}, {"id": "writer"}]
        users += [{"id": "acmebrand"}, {"id": "civicorg"}]
        r = c.post("/v1/users", json={"users": users}, headers=H)
        c.tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        now = time.time()
        posts = [
            {"id": f"w{i}", "author": "writer", "text": f"post {i}", "created_at": now - 3000 + i} for i in range(25)
        ]
        posts += [
            {
                "id": "ad-acme",
                "author": "acmebrand",
                "text": "Acme pans <b>last forever</b>",
                "created_at": now - 86400,
            },
            {"id": "ad-civic", "author": "civicorg", "text": "Vote for the park", "created_at": now - 86400},
        ]
        assert c.post("/v1/posts", json=posts, headers=H).status_code == 201
        follows = [{"kind": "follow", "user": u, "target_user": "writer", "ts": now - 7200} for u in ("vera", "otto")]
        assert c.post("/v1/events", json=follows, headers=H).status_code == 200
        for u in ("vera", "otto"):
            assert c.put(f"/v1/users/{u}/prefs", json={"policy": "chronological"}, headers=H).status_code == 200
        body = {"profile": {"country": "DE", "languages": ["de"]}}
        assert c.put("/v1/users/vera/ads/settings", json=body, headers=H).status_code == 200
        civic = {"name": "Park", "on_behalf_of": "Civic Party", "paid_by": "Civic Fund", "objective": "reach"}
        civic |= {"bid": 4.0, "creatives": ["ad-civic"], "political": True, "targeting": {}}
        for adv, cid, spec in (("acme", "pans", campaign(now)), ("civic", "park", campaign(now, **civic))):
            r = c.put(f"/v1/ads/campaigns/{cid}", json=spec, headers={"Authorization": f"Bearer {ADVERTISERS[adv]}"})
            assert r.status_code == 200, r.text
        c.app.state.ads.refresh(force=True)
        yield c


def sign_in(c, user):
    r = c.post("/web/session", json={"user": user, "token": c.tokens[user]}, headers=WEB)
    assert r.status_code == 200, r.text


def ads_on_page(c) -> list[dict]:
    page = c.get("/web/api/me/feed?limit=20", headers=WEB)
    assert page.status_code == 200, page.text
    return [it for it in page.json()["items"] if it.get("source") == "ad"]


def shown(c) -> None:
    """vera's page shows both ads; their impressions are written to the ad log."""
    sign_in(c, "vera")
    assert {a["ad"]["advertiser"] for a in ads_on_page(c)} == {"acme", "civic"}
    c.app.state.ads.flush()


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def test_library_page_is_public_local_and_says_when_nothing_was_shown(client):
    r = client.get("/ad-library")
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text and " style=" not in r.text and "http" not in re.sub(r'href="/[^"]*"', "", r.text)
    assert 'id="library-form"' in r.text and "No ad has been shown yet." in r.text
    assert not re.findall(r'<article class="card library-ad', r.text)


def test_library_lists_the_shown_ads_and_searches_them(client):
    shown(client)
    r = client.get("/ad-library")
    assert r.status_code == 200
    html = r.text
    assert html.count('<article class="card library-ad') == 2
    assert 'data-advertiser="acme"' in html and 'data-advertiser="civic"' in html
    assert "Political ad · paid by Civic Fund · on behalf of Civic Party" in html
    assert "Ad · paid by Acme Holding · on behalf of Acme Pans GmbH" in html
    assert "Acme pans &lt;b&gt;last forever&lt;/b&gt;" in html  # the creative, as text
    assert 'data-targeted="true"' in html and "<strong>countries</strong>: DE" in html
    assert "<strong>topics</strong>: cooking" in html and "Not targeted: anyone could see it." in html
    assert 'data-reach="under 100"' in html and '<tr data-country="DE"><td>DE</td><td>under 100</td></tr>' in html
    assert "2 ads, most recently shown first." in html

    def found(**q) -> set[str]:
        r = client.get("/ad-library", params=q)
        assert r.status_code == 200, r.text
        return set(re.findall(r'library-ad[^"]*" data-campaign="([^"]+)"', r.text))

    assert found(advertiser="acme") == {"pans"}
    assert found(advertiser="Civic Fund") == {"park"}  # the payer matches too
    assert found(advertiser="nobody") == set()
    assert found(political="yes") == {"park"} and found(political="no") == {"pans"}
    assert found(country="de") == {"pans", "park"} and found(country="FR") == set()
    today = day(time.time())
    assert found(since=today, until=today) == {"pans", "park"}  # "until" includes its whole day
    assert found(until="2000-01-01") == set() and found(since="2999-01-01") == set()
    r = client.get("/ad-library", params={"advertiser": "acme"})
    assert 'href="/v1/ad-library?advertiser=acme"' in r.text and 'value="acme"' in r.text
    assert "1 ad matches your search" in r.text


def test_library_page_shows_refusals_next_to_their_fields(client):
    r = client.get("/ad-library", params={"since": "yesterday"})
    assert r.status_code == 422
    assert 'id="lib-err-since"' in r.text and 'aria-invalid="true"' in r.text and "Not searched" in r.text
    r = client.get("/ad-library", params={"country": "D1"})  # the API's own refusal, shown beside the field
    assert r.status_code == 422 and 'id="lib-err-country"' in r.text
    r = client.get("/ad-library", params={"since": "2026-02-02", "until": "2026-02-01"})
    assert r.status_code == 422 and 'id="lib-err-until"' in r.text
    r = client.get("/ad-library", params={"political": "maybe"})
    assert r.status_code == 422 and 'id="lib-err-political"' in r.text


def test_search_query_turns_days_into_epoch_seconds():
    q, errors = ads_web.search_query(" acme ", "de", "2026-03-01", "2026-03-01", "yes")
    assert errors == {}
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    assert q == {
        "advertiser": "acme",
        "country": "DE",
        "since": f"{start:.0f}",
        "until": f"{start + 86400:.0f}",
        "political": "true",
    }
    assert ads_web.search_query("", "", "", "", "")[0] == {}
    assert ads_web.search_query("", "", "", "", "no")[0] == {"political": "false"}


def test_ads_proxy_guards_and_acts_for_the_session_person(client):
    c = client
    assert c.get("/web/api/ads/settings").status_code == 403  # no custom header
    assert c.get("/web/api/ads/settings", headers={**WEB, "Origin": "http://evil.example"}).status_code == 403
    assert c.get("/web/api/ads/settings", headers=WEB).status_code == 401  # no session
    sign_in(c, "vera")
    got = c.get("/web/api/ads/settings", headers=WEB)
    assert got.status_code == 200 and got.json()["profile"]["country"] == "DE" and got.json()["personalised"] is True
    assert "no-store" in got.headers["cache-control"]
    ads = {a["ad"]["advertiser"]: a for a in ads_on_page(c)}
    assert set(ads) == {"acme", "civic"}
    acme = ads["acme"]["ad"]
    assert [t["parameter"] for t in acme["why"]["targeting"]] == ["countries", "topics"]
    r = c.post("/web/api/ads/actions", json={"token": acme["token"], "action": "click"}, headers=WEB)
    assert r.status_code == 200 and r.json()["action"] == "click" and r.json()["billed"] > 0  # a CPC campaign
    r = c.post("/web/api/ads/actions", json={"token": acme["token"], "action": "hide"}, headers=WEB)
    assert r.status_code == 200
    assert c.get("/web/api/ads/settings", headers=WEB).json()["hidden_advertisers"] == ["acme"]
    assert {a["ad"]["advertiser"] for a in ads_on_page(c)} == {"civic"}  # the next page: no ad from acme
    r = c.put("/web/api/ads/settings", json={"personalised": False, "hidden_advertisers": []}, headers=WEB)
    assert r.status_code == 200 and r.json()["personalised"] is False
    assert {a["ad"]["advertiser"] for a in ads_on_page(c)} == {"civic"}  # acme targets by topics: profiling
    assert c.put("/web/api/ads/settings", json={"personalised": "no"}, headers=WEB).status_code == 422
    # another person cannot use vera's ad token through their own session
    sign_in(c, "otto")
    r = c.post("/web/api/ads/actions", json={"token": acme["token"], "action": "click"}, headers=WEB)
    assert r.status_code == 403
    assert c.get("/web/api/ads/settings", headers=WEB).json()["hidden_advertisers"] == []


def test_feed_page_loads_the_ad_script_and_links_the_repository(client):
    sign_in(client, "vera")
    r = client.get("/")
    assert r.status_code == 200
    assert '<script src="/static/ads.js" defer></script>' in r.text and "/static/ads.css" in r.text
    assert '<a href="/ad-library" id="ad-library-link">' in r.text
    for name in ("ads.js", "ads.css"):
        text = (WEB_DIR / "static" / name).read_text()
        assert not re.search(r"https?://", text), name  # no CDN, no external asset
        assert client.get(f"/static/{name}").status_code == 200
    js = (WEB_DIR / "static" / "ads.js").read_text()
    assert "innerHTML" not in js  # everything from the server is written as text
