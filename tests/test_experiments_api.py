"""Experiments over HTTP (TestClient): the three layers' arms (feed policy, ad load, notification policy) reaching
the levers, exposures written once and only when served, a person's explicit choice excluding them, one running
experiment per layer and person (a full layer refuses a start naming ``traffic``), erasure of a person's exposures,
and the experiments line on the person's web page."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings
from glassfeed.web.routes import install as install_web

KEY = "exp-key"
H = {"Authorization": f"Bearer {KEY}"}
ADV = {"acme": "acme-key"}
PEOPLE = 40


def _settings(tmp_path):
    return load_settings(
        store={"path": tmp_path / "exp.db"}, api={"key": KEY}, ads={"advertiser_keys": ADV}, environ={}
    )


@pytest.fixture()
def client(tmp_path):
    with TestClient(
        create_app(_settings(tmp_path)), base_url="http://localhost:8000", client=("127.0.0.1", 50000)
    ) as c:
        now = time.time()
        users = [{"id": f"u{i}"} for i in range(PEOPLE)] + [{"id": "author"}, {"id": "other"}, {"id": "brand"}]
        r = c.post("/v1/users", json={"users": users}, headers=H)
        assert r.status_code == 201, r.text
        c.tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        posts = [
            {"id": f"p{i}", "author": ("author", "other")[i % 2], "text": f"post {i}", "created_at": now - 60 * (i + 1)}
            for i in range(80)
        ]
        posts.append({"id": "ad0", "author": "brand", "text": "an ad", "created_at": now - 3 * 86400})
        assert c.post("/v1/posts", json=posts, headers=H).status_code == 201
        follows = [{"kind": "follow", "user": f"u{i}", "target_user": "author"} for i in range(PEOPLE)]
        assert c.post("/v1/events", json=follows, headers=H).status_code == 200
        c.now = now
        yield c


def feed_exp(name: str = "feed-x", traffic: float = 1.0, **kw) -> dict:
    return {
        "name": name,
        "layer": "feed",
        "traffic": traffic,
        "arms": [
            {"name": "control", "share": 0.5, "policy": "engagement"},
            {"name": "chrono", "share": 0.5, "policy": "chronological"},
        ],
        **kw,
    }


def notif_exp(*arms: dict) -> dict:
    return {"name": "n-x", "layer": "notifications", "arms": list(arms)}


def start(c: TestClient, spec: dict) -> dict:
    r = c.post("/v1/experiments", json=spec, headers=H)
    assert r.status_code == 201, r.text
    r = c.post(f"/v1/experiments/{spec['name']}/start", headers=H)
    assert r.status_code == 200, r.text
    return r.json()


def page(c: TestClient, user: str, **params) -> dict:
    r = c.get(f"/v1/users/{user}/feed", params={"limit": 20, **params}, headers=H)
    assert r.status_code == 200, r.text
    return r.json()


def mine(c: TestClient, user: str) -> list[dict]:
    r = c.get(f"/v1/users/{user}/experiments", headers={"Authorization": f"Bearer {c.tokens[user]}"})
    assert r.status_code == 200, r.text
    return r.json()["experiments"]


def test_feed_arm_sets_the_policy_and_exposes_once_when_served(client) -> None:
    start(client, feed_exp())
    svc = client.app.state.experiments
    assert mine(client, "u1")[0]["exposed_at"] is None  # assigned, not yet served
    prefs = client.get("/v1/users/u1/prefs", headers=H).json()  # asking the policy exposes nobody
    assert mine(client, "u1")[0]["exposed_at"] is None
    arm = mine(client, "u1")[0]["arm"]
    want = {"control": "engagement", "chrono": "chronological"}[arm]
    assert prefs["policy"] == want
    assert page(client, "u1")["policy"] == want
    first = mine(client, "u1")[0]["exposed_at"]
    assert first is not None
    nxt = page(client, "u1", limit=5)
    assert nxt["cursor"] and page(client, "u1", limit=5, cursor=nxt["cursor"])["policy"] == want
    assert mine(client, "u1")[0]["exposed_at"] == first  # the first exposure stays
    assert page(client, "u2", policy="chronological")["policy"] == "chronological"  # named on the request
    assert mine(client, "u2")[0]["exposed_at"] is None  # ... so not served by its arm
    assert len(client.app.state.store.exposures("feed-x")) == 1
    assert svc.flush() == 0  # nothing left queued


def test_an_explicit_choice_excludes_and_is_counted(client) -> None:
    r = client.put("/v1/users/u3/prefs", json={"policy": "chronological"}, headers=H)
    assert r.status_code == 200
    start(client, feed_exp())
    assert page(client, "u3")["policy"] == "chronological"
    got = mine(client, "u3")
    assert got[0]["excluded"].startswith("you chose your feed yourself") and got[0]["exposed_at"] is None
    rep = client.get("/v1/experiments/feed-x/report", headers=H).json()
    assert rep["excluded"]["total"] == 1 and sum(rep["exposed"].values()) == 0
    assert rep["srm"] is None and "Nobody has been exposed yet." in rep["notes"]


def test_one_running_experiment_per_layer_and_the_layers_overlap(client) -> None:
    first = start(client, feed_exp("first", traffic=0.6))
    assert first["buckets"] == [0, 6000]
    assert client.post("/v1/experiments", json=feed_exp("second", traffic=0.6), headers=H).status_code == 201
    r = client.post("/v1/experiments/second/start", headers=H)
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "traffic", r.text
    assert "40.00%" in r.json()["detail"][0]["reason"]
    client.post("/v1/experiments", json=feed_exp("second", traffic=0.4), headers=H)  # a draft may be replaced
    assert client.post("/v1/experiments/second/start", headers=H).json()["buckets"] == [6000, 10000]
    ads = {"name": "ads-x", "layer": "ads", "arms": [{"name": "off", "share": 0.5, "ad_load": 0.0},
                                                      {"name": "on", "share": 0.5, "ad_load": 0.2}]}  # fmt: skip
    start(client, ads)
    for i in range(PEOPLE):
        layers = [e["layer"] for e in mine(client, f"u{i}") if e["status"] == "running"]
        assert sorted(layers) == ["ads", "feed"]  # exactly one feed experiment each, and one ads experiment
    assert client.get("/v1/experiments/nope", headers=H).status_code == 404
    assert client.get("/v1/experiments/Bad Name", headers=H).status_code == 422
    assert client.post("/v1/experiments/nope/stop", headers=H).status_code == 404
    assert client.post("/v1/experiments/ads-x/stop", headers=H).status_code == 200
    assert client.post("/v1/experiments/ads-x/stop", headers=H).status_code == 409
    assert [e["name"] for e in client.get("/v1/experiments", headers=H).json()["experiments"]] == [
        "ads-x",
        "first",
        "second",
    ]


def _campaign(c: TestClient) -> None:
    body = {
        "name": "Campaign",
        "on_behalf_of": "Acme",
        "paid_by": "Acme Ltd",
        "objective": "reach",
        "bid": 4.0,
        "daily_budget": 50.0,
        "lifetime_budget": 500.0,
        "start": c.now - 3600,
        "creatives": ["ad0"],
    }
    r = c.put("/v1/ads/campaigns/c1", json=body, headers={"Authorization": f"Bearer {ADV['acme']}"})
    assert r.status_code == 200, r.text


def test_ads_arm_sets_the_ad_load(client) -> None:
    _campaign(client)
    ads = {"name": "ads-x", "layer": "ads", "arms": [{"name": "off", "share": 0.5, "ad_load": 0.0},
                                                      {"name": "on", "share": 0.5, "ad_load": 0.2}]}  # fmt: skip
    start(client, ads)
    shown = {"off": 0, "on": 0}
    for i in range(12):
        arm = mine(client, f"u{i}")[0]["arm"]
        shown[arm] += sum(1 for it in page(client, f"u{i}")["items"] if it.get("ad"))
        assert mine(client, f"u{i}")[0]["exposed_at"] is not None
    assert shown["off"] == 0 and shown["on"] > 0, shown
    rep = client.get("/v1/experiments/ads-x/report", headers=H).json()
    assert sum(rep["exposed"].values()) == 12 and rep["excluded"]["total"] == 0


def test_ads_and_notifications_need_their_levers_and_policies(client) -> None:
    bad = notif_exp({"name": "a", "share": 0.5, "policy": "batched"}, {"name": "b", "share": 0.5, "policy": "nope"})
    r = client.post("/v1/experiments", json=bad, headers=H)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "arms.1.policy"
    assert "engagement_push" in r.json()["detail"][0]["reason"]
    client.app.state.experiments._ad_server = None  # as on a server with [ads] enabled = false
    ads = {"name": "ads-x", "layer": "ads", "arms": [{"name": "a", "share": 0.5, "ad_load": 0.0},
                                                      {"name": "b", "share": 0.5, "ad_load": 0.1}]}  # fmt: skip
    r = client.post("/v1/experiments", json=ads, headers=H)
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "layer"


def test_notifications_arm_sets_the_policy_and_exposes_at_the_first_decision(client) -> None:
    spec = notif_exp(
        {"name": "digest", "share": 0.5, "policy": "batched"}, {"name": "push", "share": 0.5, "policy": "minimal"}
    )
    start(client, spec)
    r = client.put("/v1/users/u5/notification-settings", json={"policy": "engagement_push"}, headers=H)
    assert r.status_code == 200, r.text
    for u in ("u4", "u5"):
        got = mine(client, u)[0]
        want = {"digest": "batched", "push": "minimal"}[got["arm"]] if u == "u4" else "engagement_push"
        settings = client.get(f"/v1/users/{u}/notification-settings", headers=H).json()
        assert settings["policy"] == want
    # a post by u4 liked by someone: a notification for u4 is decided under their arm's policy (their exposure)
    assert client.post("/v1/posts", json=[{"id": "mine4", "author": "u4", "text": "hi"}], headers=H).status_code == 201
    assert client.post("/v1/posts", json=[{"id": "mine5", "author": "u5", "text": "hi"}], headers=H).status_code == 201
    ev = [{"kind": "like", "user": "u9", "post": "mine4"}, {"kind": "like", "user": "u9", "post": "mine5"}]
    assert client.post("/v1/events", json=ev, headers=H).status_code == 200
    assert client.get("/v1/users/u4/notifications", headers=H).json()["items"]
    assert mine(client, "u4")[0]["exposed_at"] is not None
    got5 = mine(client, "u5")[0]
    assert got5["exposed_at"] is None and got5["excluded"].startswith("you chose your notification policy")


def test_erasure_deletes_a_persons_exposures(client) -> None:
    start(client, feed_exp())
    page(client, "u6")
    assert mine(client, "u6")[0]["exposed_at"] is not None
    r = client.delete("/v1/users/u6/data", headers=H)
    assert r.status_code == 200 and r.json()["deleted"]["exposures"] == 1
    assert client.app.state.store.exposures(user=client.app.state.store.user_idx("u6")) == []


def test_the_web_page_lists_the_persons_experiments(client) -> None:
    install_web(client.app, demo=True)
    start(client, feed_exp(description="a test of the chronological feed"))
    client.put("/v1/users/u8/prefs", json={"policy": "chronological"}, headers=H)
    page(client, "u7")
    arm = mine(client, "u7")[0]["arm"]
    text = client.get("/?user=u7").text
    line = text[text.index('id="experiments-line"') :].split("</p>")[0]
    assert "feed-x" in line and f"arm <em>{arm}</em>" in line and "ranked by the" in line
    line8 = client.get("/?user=u8").text.split('id="experiments-line"')[1].split("</p>")[0]
    assert "not for you" in line8 and "you chose your feed yourself" in line8
    client.post("/v1/experiments/feed-x/stop", headers=H)
    assert "(ended)" in client.get("/?user=u7").text.split('id="experiments-line"')[1].split("</p>")[0]
    line0 = client.get("/?user=author").text.split('id="experiments-line"')[1].split("</p>")[0]
    assert "none." in line0  # the author was never served by it (stopped: nobody is assigned any more)
