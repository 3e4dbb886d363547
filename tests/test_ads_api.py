"""Ads over HTTP: advertisers' campaigns behind their own keys, targeting refusals naming the field (every special
category, sensitive topics, the minors rule), ads placed in the feed by the ad load with their label and "why",
"turn off interest-based ads" and minors getting only ads without profiling, clicks billed once at the clearing
price, hides, frequency caps, reports without per-person data, the public ad repository, and budgets that are
never overspent by more than one price under concurrent pages (one worker, and two workers sharing Redis)."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from fastapi.testclient import TestClient

from glassfeed.ads.placement import ad_places
from glassfeed.ads.policy import load_ad_policy
from glassfeed.ads.targeting import hashed_id
from glassfeed.api.app import create_app
from glassfeed.feed.policy import builtin_policies
from glassfeed.settings import load_settings
from pg_support import require_redis

KEY = "svc-key"
H = {"Authorization": f"Bearer {KEY}"}
ADV = {"acme": "acme-key", "globex": "globex-key", "initech": "initech-key"}
POLICY = load_ad_policy()


def akey(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADV[name]}"}


def _settings(tmp_path, **more):
    return load_settings(store={"path": tmp_path / "ads.db"}, api={"key": KEY}, ads={"advertiser_keys": ADV}, **more)


def _populate(c: TestClient) -> float:
    """u0..u9 (u0 likes cooking, u1 likes cycling), a brand account, 200 organic posts newer than 4 creatives."""
    now = time.time()
    users = [{"id": f"u{i}", "handle": f"u{i}"} for i in range(10)] + [{"id": "brand", "handle": "brand"}]
    users[0]["interests"] = ["cooking"]
    users[1]["interests"] = ["cycling"]
    r = c.post("/v1/users", json={"users": users}, headers=H)
    assert r.status_code == 201, r.text
    posts = [
        {"id": f"p{i}", "author": f"u{i % 5 + 5}", "text": f"organic post {i}", "created_at": now - 60 * (i + 1)}
        for i in range(200)
    ]
    posts += [
        {"id": f"ad{k}", "author": "brand", "text": f"creative {k}", "created_at": now - 3 * 86400 - k}
        for k in range(4)
    ]
    r = c.post("/v1/posts", json=posts, headers=H)
    assert r.status_code == 201, r.text
    return now


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(_settings(tmp_path))) as c:
        c.now = _populate(c)
        yield c


def spec(now: float, **kw):
    base = {
        "name": "Campaign",
        "on_behalf_of": "Acme Shoes",
        "paid_by": "Acme Ltd",
        "objective": "reach",
        "bid": 4.0,
        "daily_budget": 50.0,
        "lifetime_budget": 500.0,
        "start": now - 3600,
        "creatives": ["ad0"],
    }
    return {**base, **kw}


def put(c, adv, cid, body):
    return c.put(f"/v1/ads/campaigns/{cid}", json=body, headers=akey(adv))


def page(c, user="u0", limit=20, **params):
    r = c.get(f"/v1/users/{user}/feed", params={"limit": limit, **params}, headers=H)
    assert r.status_code == 200, r.text
    return r.json()


def ads_of(p):
    return [(i, it) for i, it in enumerate(p["items"]) if it.get("ad")]


# ---------------------------------------------------------------------- advertisers
def test_an_advertiser_sees_and_changes_only_its_own_campaigns(client):
    now = client.now
    assert put(client, "acme", "shoes", spec(now)).status_code == 200
    assert client.get("/v1/ads/campaigns", headers=akey("acme")).json()["campaigns"][0]["id"] == "shoes"
    assert client.get("/v1/ads/campaigns", headers=akey("globex")).json()["campaigns"] == []
    assert client.get("/v1/ads/campaigns/shoes", headers=akey("globex")).status_code == 404
    r = put(client, "globex", "shoes", spec(now))
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "campaign_id"
    assert client.get("/v1/ads/campaigns", headers=H).status_code == 403  # the service key is not an advertiser's
    assert client.get("/v1/ads/campaigns").status_code == 401
    changed = put(client, "acme", "shoes", spec(now, status="paused", bid=2.5)).json()
    assert changed["status"] == "paused" and changed["bid"] == 2.5 and changed["bid_unit"] == "cpm"
    got = client.get("/v1/ads/campaigns/shoes", headers=akey("acme")).json()
    assert got["created_at"] < got["updated_at"] and got["spent_total"] == 0.0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"creatives": ["nope"]}, "creatives.0", "unknown post"),
        ({"lifetime_budget": 1.0, "daily_budget": 5.0}, "lifetime_budget", "at least the daily budget"),
        ({"end": 10.0, "start": 20.0}, "end", "after start"),
        ({"objective": "likes"}, "objective", "reach"),
        ({"targeting": {"countries": ["de"]}}, "targeting.countries.0", "ISO 3166-1"),
        ({"targeting": {"lookalike_of": "nobody"}}, "targeting.lookalike_of", "unknown account"),
        ({"targeting": {"shoe_size": [42]}}, "targeting.shoe_size", "unknown targeting parameter"),
        ({"targeting": {"custom_audience": ["not-a-hash"]}}, "targeting.custom_audience.0", "SHA-256"),
    ],
)
def test_bad_campaigns_are_refused_naming_the_field(client, body, field, words):
    r = put(client, "acme", "c1", spec(client.now, **body))
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["detail"]]
    assert field in fields, fields
    assert words in r.text
    assert client.get("/v1/ads/campaigns", headers=akey("acme")).json()["campaigns"] == []  # nothing written


@pytest.mark.parametrize("category", sorted(POLICY.special_categories))
def test_every_special_category_is_refused_as_a_field_and_as_a_topic(client, category):
    cat = POLICY.special_categories[category]
    r = put(client, "acme", "c1", spec(client.now, targeting={cat.fields[0]: ["x"]}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == f"targeting.{cat.fields[0]}"
    assert "special category" in r.json()["detail"][0]["reason"] and cat.words in r.json()["detail"][0]["reason"]
    r = put(client, "acme", "c1", spec(client.now, targeting={"topics": ["cooking", cat.topics[0]]}))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "targeting.topics.1"
    assert cat.words in r.json()["detail"][0]["reason"]


def test_profiling_based_ads_to_minors_are_refused(client):
    r = put(client, "acme", "c1", spec(client.now, targeting={"age_bands": ["18-24", "13-17"]}))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "targeting.age_bands.1"
    assert "minors" in r.json()["detail"][0]["reason"] and "28(2)" in r.json()["detail"][0]["reason"]


# ---------------------------------------------------------------------- placement
def test_ads_sit_where_the_ad_load_allows_each_with_its_label_and_why(client):
    now = client.now
    put(client, "acme", "shoes", spec(now, bid=6.0))
    put(client, "acme", "boots", spec(now, bid=9.0, creatives=["ad1"]))  # the same advertiser: one per page
    body = spec(now, bid=3.0, creatives=["ad2"], paid_by="Globex plc", on_behalf_of="Globex", political=True)
    put(client, "globex", "vote", body)
    p = page(client, limit=20)
    ads = ads_of(p)
    load = builtin_policies()[p["policy"]].ads
    assert [i for i, _ in ads] == ad_places(20, load, 2)  # two advertisers: two places
    assert len(p["items"]) == 22 and [it["ad"]["advertiser"] for _, it in ads] == ["acme", "globex"]
    first, second = ads[0][1], ads[1][1]
    assert first["post"] == "ad1" and first["ad"]["campaign"] == "boots"  # acme's higher bid competes
    assert first["ad"]["label"] == "Ad · paid by Acme Ltd · on behalf of Acme Shoes" == first["reason"]
    assert second["ad"]["label"].startswith("Political ad · paid by Globex plc")
    why = first["ad"]["why"]
    assert why["auction"]["bidders"] == 2 and why["auction"]["rank"] == 1
    assert why["auction"]["price"] == pytest.approx(3.0)  # GSP: the next bid (both CPM, same quality)
    assert why["auction"]["price_set_by"] == "the next bidder"
    assert second["ad"]["why"]["auction"]["price"] == pytest.approx(POLICY.auction.reserve_cpm)
    assert "not targeted" in why["summary"] and why["targeting"] == []
    assert {"hide_advertiser", "personalised_ads"} <= set(why["change"])


def test_anonymous_readers_get_only_untargeted_ads(client):
    now = client.now
    put(client, "acme", "cook", spec(now, bid=20.0, targeting={"topics": ["cooking"]}))
    put(client, "globex", "all", spec(now, creatives=["ad1"]))
    p = client.get("/v1/feed", params={"limit": 20}).json()
    assert [it["ad"]["campaign"] for _, it in ads_of(p)] == ["all"]
    assert "not signed in" in ads_of(p)[0][1]["ad"]["why"]["summary"]


def test_turning_off_interest_based_ads_leaves_only_ads_without_profiling(client):
    now = client.now
    put(client, "acme", "cook", spec(now, bid=20.0, targeting={"topics": ["cooking"]}))
    put(client, "globex", "de", spec(now, bid=2.0, creatives=["ad1"], targeting={"countries": ["DE"]}))
    put(client, "initech", "all", spec(now, bid=1.0, creatives=["ad2"]))
    tok = client.put("/v1/users/u0/ads/settings", json={"profile": {"country": "DE"}}, headers=H)
    assert tok.status_code == 200 and tok.json()["profile"] == {"country": "DE"}
    before = {it["ad"]["campaign"]: it for _, it in ads_of(page(client))}
    assert set(before) == {"cook", "de"}  # two places: the two best scores
    assert before["cook"]["ad"]["why"]["targeting"][0] == {
        "parameter": "topics",
        "campaign": ["cooking"],
        "you": ["cooking"],
        "profiling": True,
    }
    r = client.put("/v1/users/u0/ads/settings", json={"personalised": False}, headers=H)
    assert r.json()["personalised"] is False
    after = {it["ad"]["campaign"]: it for _, it in ads_of(page(client))}
    assert set(after) == {"de", "all"}  # the topic-targeted campaign is gone
    assert all(not w["profiling"] for it in after.values() for w in it["ad"]["why"]["targeting"])
    assert "turned off interest-based ads" in after["de"]["ad"]["why"]["summary"]
    assert page(client, user="u2") and "cook" not in {it["ad"]["campaign"] for _, it in ads_of(page(client, "u2"))}


def test_people_known_to_be_minors_get_no_profiling_based_ad(client):
    now = client.now
    put(client, "acme", "cook", spec(now, bid=20.0, targeting={"topics": ["cooking"]}))
    put(client, "globex", "adults", spec(now, bid=10.0, creatives=["ad1"], targeting={"age_bands": ["25-34"]}))
    put(client, "initech", "all", spec(now, bid=1.0, creatives=["ad2"]))
    year = time.gmtime(now).tm_year
    client.put("/v1/users/u0/ads/settings", json={"profile": {"birth_year": year - 15}}, headers=H)
    got = client.get("/v1/users/u0/ads/settings", headers=H).json()
    assert got["minor"] is True
    assert {it["ad"]["campaign"] for _, it in ads_of(page(client))} == {"all"}
    client.put("/v1/users/u0/ads/settings", json={"profile": {"birth_year": year - 30}}, headers=H)
    assert {it["ad"]["campaign"] for _, it in ads_of(page(client))} == {"cook", "adults"}


def test_custom_audiences_match_hashed_account_ids_only(client):
    now = client.now
    body = spec(now, bid=9.0, targeting={"custom_audience": [hashed_id("u3")]})
    assert put(client, "acme", "list", body).status_code == 200
    assert [it["ad"]["campaign"] for _, it in ads_of(page(client, "u3"))] == ["list"]
    assert ads_of(page(client, "u4")) == []
    client.app.state.ads.flush()
    repo = client.get("/v1/ad-library").json()["ads"]
    assert "the advertiser's own list" in repo[0]["targeting"]["custom_audience"]  # no hash is published


def test_the_frequency_cap_limits_one_campaign_per_person_per_day(client):
    put(client, "acme", "shoes", spec(client.now))
    shown = sum(len(ads_of(page(client))) for _ in range(POLICY.auction.frequency_cap + 3))
    assert shown == POLICY.auction.frequency_cap
    assert len(ads_of(page(client, "u1"))) == 1  # another person's cap is their own


# ---------------------------------------------------------------------- clicks, hides, reports, repository
def test_a_click_on_a_cpc_ad_is_billed_once_at_the_clearing_price(client):
    now = client.now
    put(client, "acme", "click", spec(now, objective="clicks", bid=0.5))
    put(client, "globex", "cpm", spec(now, bid=2.0, creatives=["ad1"]))
    (_, ad), *_ = [a for a in ads_of(page(client)) if a[1]["ad"]["campaign"] == "click"]
    price = ad["ad"]["why"]["auction"]["price"]
    # 0.5 per click at the prior P(click) 0.01 scores 5 per 1,000: it beats 2.00 CPM and pays 2 / 1000 / 0.01
    assert price == pytest.approx(2.0 / 1000 / POLICY.ranker.prior_click)
    act = {"token": ad["ad"]["token"], "action": "click"}
    r = client.post("/v1/users/u0/ads/actions", json=act, headers=H)
    assert r.status_code == 200 and r.json()["billed"] == pytest.approx(price, abs=1e-6)
    again = client.post("/v1/users/u0/ads/actions", json=act, headers=H).json()
    assert again["repeat"] is True and again["billed"] == 0.0
    assert client.post("/v1/users/u1/ads/actions", json=act, headers=H).status_code == 403  # not u1's ad
    token = ad["ad"]["token"]
    signed = token.partition("~")[2]
    for bad in (token[:-2] + "xx", "9~" + signed, "x~" + signed, signed, "0~"):  # forged; an index not on the page
        r = client.post("/v1/users/u0/ads/actions", json={"token": bad, "action": "click"}, headers=H)
        assert r.status_code == 400 and r.json()["detail"][0]["field"] == "token", (bad, r.text)
    assert client.post("/v1/users/u0/ads/actions", json={**act, "action": "buy"}, headers=H).status_code == 422
    client.app.state.ads.flush()
    rep = client.get("/v1/ads/reports", headers=akey("acme")).json()
    (camp,) = rep["campaigns"]
    assert camp["total"]["clicks"] == 1 and camp["total"]["impressions"] == 1 and camp["total"]["reach"] == 1
    assert camp["total"]["spend"] == pytest.approx(price, abs=1e-6) and camp["total"]["cpc"] == pytest.approx(price)
    assert "u0" not in str(rep) and "request" not in str(rep)  # no per-person data


def test_hiding_an_ad_hides_its_advertiser_and_lowers_its_quality(client):
    put(client, "acme", "shoes", spec(client.now))
    (_, ad), *_ = ads_of(page(client))
    r = client.post("/v1/users/u0/ads/actions", json={"token": ad["ad"]["token"], "action": "hide"}, headers=H)
    assert r.status_code == 200
    assert client.get("/v1/users/u0/ads/settings", headers=H).json()["hidden_advertisers"] == ["acme"]
    assert ads_of(page(client)) == []
    assert client.app.state.ads.stats["shoes"].hides == 1
    assert client.app.state.ads.ranker.quality([client.app.state.ads.stats["shoes"]])[0] < 1.0


def test_the_ad_library_lists_every_ad_shown_with_reach_in_bands(client):
    now = client.now
    put(client, "acme", "shoes", spec(now, targeting={"countries": ["DE", "FR"]}))
    put(client, "globex", "vote", spec(now, creatives=["ad1"], political=True, paid_by="Globex plc"))
    for i, country in enumerate(["DE", "DE", "FR"]):
        client.put(f"/v1/users/u{i}/ads/settings", json={"profile": {"country": country}}, headers=H)
        page(client, f"u{i}")
    client.app.state.ads.flush()
    lib = client.get("/v1/ad-library").json()
    by = {a["campaign"]: a for a in lib["ads"]}
    assert set(by) == {"shoes", "vote"}
    shoes = by["shoes"]
    assert shoes["paid_by"] == "Acme Ltd" and shoes["targeted"] is True
    assert shoes["targeting"] == {"countries": ["DE", "FR"]} and shoes["content"][0]["text"] == "creative 0"
    assert shoes["reach"] == {"total": "under 100", "by_country": {"DE": "under 100", "FR": "under 100"}}
    assert shoes["first_shown"] <= shoes["last_shown"] and shoes["listed_until"] > shoes["last_shown"]
    assert [a["campaign"] for a in client.get("/v1/ad-library?advertiser=glob").json()["ads"]] == ["vote"]
    assert [a["campaign"] for a in client.get("/v1/ad-library?political=true").json()["ads"]] == ["vote"]
    assert sorted(a["campaign"] for a in client.get("/v1/ad-library?country=FR").json()["ads"]) == ["shoes", "vote"]
    assert client.get("/v1/ad-library?country=IT").json()["ads"] == []
    assert client.get("/v1/ad-library?since=" + str(now + 86400)).json()["ads"] == []
    assert client.get("/v1/ad-library?country=fr").status_code == 422
    assert "second-price" in client.get("/v1/ads/policy").text


# ---------------------------------------------------------------------- budgets under concurrency
def _cheap_budget(c, now: float) -> tuple[float, float]:
    """A campaign whose daily budget buys 7.5 impressions at its price (the reserve: one bidder); pacing off
    (slack 1), so that the budget, not the time of day, is what stops it."""
    c.app.state.ads.policy = POLICY.model_copy(update={"pacing": POLICY.pacing.model_copy(update={"slack": 1.0})})
    price = POLICY.auction.reserve_cpm / 1000.0
    daily = 7.5 * price  # the 8th impression crosses it
    body = spec(now, daily_budget=daily, lifetime_budget=daily, start=now - 86400)
    assert put(c, "acme", "tiny", body).status_code == 200
    return price, daily


def _spent(c) -> float:
    c.app.state.ads.flush()
    return c.get("/v1/ads/reports", headers=akey("acme")).json()["campaigns"][0]["total"]["spend"]


def test_many_simultaneous_pages_never_overspend_a_budget_by_more_than_one_price(tmp_path):
    with TestClient(create_app(_settings(tmp_path))) as c:
        now = _populate(c)
        price, daily = _cheap_budget(c, now)
        users = [f"u{i}" for i in range(10)]
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda i: page(c, users[i % 10]), range(80)))
        shown = sum(len(ads_of(p)) for p in pages)
        spent = _spent(c)
        assert spent == pytest.approx(shown * price, abs=1e-9)  # every impression billed, none twice
        assert shown == 8 and daily < spent < daily + price  # spent, and by at most one price more


def test_two_workers_sharing_redis_never_overspend_a_budget_by_more_than_one_price(tmp_path):
    url = require_redis()
    prefix = f"gft:{uuid.uuid4().hex[:12]}:"
    settings = _settings(tmp_path, serving={"redis_url": url, "redis_prefix": prefix})
    client = redis.Redis.from_url(url)
    try:
        with TestClient(create_app(settings)) as a:
            now = _populate(a)
            price, daily = _cheap_budget(a, now)
            with TestClient(create_app(settings)) as b:  # a second worker on the same store and Redis
                b.app.state.ads.policy = a.app.state.ads.policy
                b.app.state.ads.refresh(force=True)
                assert "tiny" in b.app.state.ads.campaigns
                go = threading.Barrier(2)

                def run(c: TestClient) -> int:
                    go.wait()
                    return sum(len(ads_of(page(c, f"u{i % 10}"))) for i in range(40))

                with ThreadPoolExecutor(2) as pool:
                    shown = sum(pool.map(run, [a, b]))
                b.app.state.ads.flush()
                spent = _spent(a)
                assert spent == pytest.approx(shown * price, abs=1e-9)
                assert shown == 8 and daily < spent < daily + price
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


def test_a_lookalike_audience_is_the_followers_and_the_people_most_like_them(client):
    follows = [("u1", "brand"), ("u2", "brand"), ("u1", "u5"), ("u2", "u5"), ("u1", "u6"), ("u2", "u6")]
    follows += [("u3", "u5"), ("u3", "u6"), ("u4", "u9")]
    r = client.post("/v1/follows", json=[{"user": a, "target": b} for a, b in follows], headers=H)
    assert r.status_code == 200, r.text
    assert put(client, "acme", "like", spec(client.now, targeting={"lookalike_of": "brand"})).status_code == 200
    # 0.10 of the 8 people who do not follow the brand (rounded): one, u3, whose followees are the followers' own
    assert client.app.state.ads.lookalike["like"] == {client.app.state.store.user_idx(u) for u in ("u1", "u2", "u3")}
    assert [it["ad"]["campaign"] for _, it in ads_of(page(client, "u3"))] == ["like"]
    assert ads_of(page(client, "u4")) == []


def test_the_export_lists_the_ads_shown_and_an_erasure_unattributes_them(client):
    put(client, "acme", "shoes", spec(client.now))
    assert len(ads_of(page(client))) == 1
    client.app.state.ads.flush()
    data = client.get("/v1/users/u0/data", headers=H).json()
    assert [(a["kind"], a["campaign"], a["post"]) for a in data["ads"]] == [("impression", "shoes", "ad0")]
    r = client.delete("/v1/users/u0/data", headers=H)
    assert r.status_code == 200, r.text
    assert client.get("/v1/users/u0/data", headers=H).json()["ads"] == []
    rows = client.app.state.store.ad_log()
    assert [r.user for r in rows] == [None] and rows[0].price > 0  # billing stays, without the person
    assert client.get("/v1/ad-library").json()["ads"][0]["campaign"] == "shoes"


def test_the_demo_campaigns_obey_the_rules_and_are_written_once(client):
    from glassfeed.ads.demo import add_demo_campaigns

    made = add_demo_campaigns(client.app.state.ingestor, POLICY, client.now)
    assert made == ["trail-shoes", "reading-club", "register-to-vote"]
    assert add_demo_campaigns(client.app.state.ingestor, POLICY, client.now) == []  # the store has campaigns
    camps = client.app.state.ads.campaigns
    assert set(made) <= set(camps) and camps["register-to-vote"].political
    assert len(ads_of(page(client, "u1"))) >= 2


def test_only_running_campaigns_bid_scheduled_paused_and_ended_ones_do_not(client):
    now = client.now
    put(client, "acme", "later", spec(now, start=now + 3600))
    put(client, "globex", "paused", spec(now, creatives=["ad1"], status="paused"))
    put(client, "initech", "over", spec(now, creatives=["ad2"], start=now - 7200, end=now - 60))
    assert ads_of(page(client)) == []
    put(client, "globex", "paused", spec(now, creatives=["ad1"]))  # resumed
    assert [it["ad"]["campaign"] for _, it in ads_of(page(client))] == ["paused"]


def test_a_shutdown_writes_the_ad_impressions_still_queued(tmp_path):
    from glassfeed.store import open_store

    settings = _settings(tmp_path, serving={"impression_flush_ms": 60_000})  # the writer would wait a minute
    with TestClient(create_app(settings)) as c:
        now = _populate(c)
        put(c, "acme", "shoes", spec(now))
        assert len(ads_of(page(c))) == 1
        assert c.app.state.store.ad_log() == []  # still queued
    store = open_store(settings.store.path)
    try:
        assert [(r.kind, r.campaign) for r in store.ad_log()] == [("impression", "shoes")]
    finally:
        store.close()


def test_ad_impressions_commit_with_the_pages_impressions_and_a_failed_write_keeps_them(tmp_path, monkeypatch):
    settings = _settings(tmp_path, serving={"impression_flush_ms": 60_000})  # flushed by hand below
    with TestClient(create_app(settings)) as c:
        now = _populate(c)
        put(c, "acme", "shoes", spec(now))
        store, feed = c.app.state.store, c.app.state.feed
        before = store.max_seq()
        assert len(ads_of(page(c))) == 1
        real = store.append_ad_log

        def broken(tx, rows):
            raise RuntimeError("disk full")

        monkeypatch.setattr(store, "append_ad_log", broken)
        with pytest.raises(RuntimeError):
            feed.flush_impressions()
        assert store.max_seq() == before and store.ad_log() == []  # one transaction: neither was written
        monkeypatch.setattr(store, "append_ad_log", real)
        assert feed.impression_queue_depth() == 1  # the billed ad impression is still queued
        assert len(ads_of(page(c))) == 1
        feed.flush_impressions()
        assert store.max_seq() > before  # the second page's impressions
        assert [(r.kind, r.campaign) for r in store.ad_log()] == [("impression", "shoes")] * 2
        assert c.app.state.ads.stats["shoes"].impressions == 2  # folded once each


def test_one_advertisers_campaigns_compete_by_value_per_impression_not_raw_bids(client):
    now = client.now
    put(client, "acme", "cpm", spec(now, bid=3.0))  # 3.00 per 1,000 impressions: 0.003 an impression
    put(client, "acme", "cpc", spec(now, objective="clicks", bid=1.0, creatives=["ad1"]))  # 1.00 x P(click) 0.01
    assert [it["ad"]["campaign"] for _, it in ads_of(page(client))] == ["cpc"]
