"""An end-to-end experiment on a live server (a real uvicorn process): an experiment between two feed policies with
guardrails, a few hundred simulated people requesting their feeds and writing events with their own tokens, then
the report: both arms with their exposure counts (each person exposed once, however often they come back), no
sample-ratio mismatch, CUPED reducing the variance with the pre-exposure history, and the divisive-share guardrail
breached by the arm that serves divisive posts. People who chose their feed themselves are excluded and counted;
each person can read which experiment and arm they are in."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from live_server import LiveServer

KEY = "e2e-key"
H = {"Authorization": f"Bearer {KEY}"}
PEOPLE = 300
CHOOSERS = 20  # p0..p19 chose the chronological feed themselves before the experiment
NAME = "divisive-guard"


def _network(c: httpx.Client, now: float) -> tuple[dict[str, str], dict[str, float], dict[str, float]]:
    """People following three of five calm accounts (about one in eight of their posts divisive); five loud accounts
    posting divisive posts that others like; an archive of old calm posts for the pre-exposure history. Returns
    the tokens, each post's divisiveness and each person's like propensity (which their history already shows)."""
    users = [{"id": f"p{i}", "interests": ["politics"]} for i in range(PEOPLE)]
    users += [{"id": f"{kind}{j}"} for kind in ("calm", "loud") for j in range(5)] + [{"id": "archive"}]
    r = c.post("/v1/users", json={"users": users}, headers=H)
    assert r.status_code == 201, r.text
    tokens = {u["id"]: u["token"] for u in r.json()["users"]}
    rng = random.Random(7)
    div: dict[str, float] = {}
    posts = []
    for i in range(80):
        div[f"c{i}"] = 0.9 if rng.random() < 0.12 else 0.1
        posts.append({"id": f"c{i}", "author": f"calm{i % 5}", "text": f"calm {i}", "created_at": now - 40 * (i + 1)})
    for i in range(60):
        div[f"d{i}"] = 0.9
        posts.append({"id": f"d{i}", "author": f"loud{i % 5}", "text": f"loud {i}", "created_at": now - 30 * (i + 1)})
    for i in range(20):
        div[f"a{i}"] = 0.1
        posts.append({"id": f"a{i}", "author": "archive", "text": f"old {i}", "created_at": now - 10 * 86400 - i})
    for p in posts:
        p["divisiveness"] = div[p["id"]]
        p["topics"] = ["politics" if div[p["id"]] > 0.5 else "gardening"]
    assert c.post("/v1/posts", json=posts, headers=H).status_code == 201
    like = {f"p{i}": rng.uniform(0.03, 0.4) for i in range(PEOPLE)}
    events = [
        {"kind": "follow", "user": f"p{i}", "target_user": f"calm{j}"}
        for i in range(PEOPLE)
        for j in rng.sample(range(5), 3)
    ]
    events += [{"kind": "like", "user": f"loud{j}", "post": f"d{i}"} for i in range(60) for j in range(5)]
    for i in range(PEOPLE):  # two days before: 10 impressions of old posts, liked at the person's own rate
        u, t = f"p{i}", now - 2 * 86400
        for k in range(10):
            events.append({"kind": "impression", "user": u, "post": f"a{(i + k) % 20}", "ts": t, "position": k})
            if rng.random() < like[u]:
                events.append({"kind": "like", "user": u, "post": f"a{(i + k) % 20}", "ts": t + 5})
    r = c.post("/v1/events", json=events, headers=H)
    assert r.status_code == 200, r.text
    for i in range(CHOOSERS):
        u = f"p{i}"
        r = c.put(
            f"/v1/users/{u}/prefs", json={"policy": "chronological"}, headers={"Authorization": f"Bearer {tokens[u]}"}
        )
        assert r.status_code == 200, r.text
    return tokens, div, like


def _visit(c: httpx.Client, user: str, token: str, div: dict[str, float], like: float, seed: int) -> str:
    """One person opens their feed and reacts: divisive posts draw twice their usual likes, and now and then a
    "see less"; they answer "worth your time?" for the page. Returns the page's policy."""
    auth = {"Authorization": f"Bearer {token}"}
    r = c.get(f"/v1/users/{user}/feed", params={"limit": 20}, headers=auth)
    assert r.status_code == 200, r.text
    page = r.json()
    rng = random.Random(seed)
    events = []
    for it in page["items"]:
        d = div[it["post"]] > 0.5
        if rng.random() < min(1.0, like * (2.0 if d else 1.0)):
            events.append({"kind": "like", "post": it["post"]})
        if d and rng.random() < 0.1:
            events.append({"kind": "see_less", "post": it["post"]})
    events.append({"kind": "worth_it", "request_id": page["request_id"], "value": 1 if rng.random() < 0.6 else 0})
    r = c.post(f"/v1/users/{user}/events", json=events, headers=auth)
    assert r.status_code == 200, r.text
    return page["policy"]


@pytest.mark.slow
def test_an_experiment_on_a_live_server_reports_and_detects_a_guardrail_breach(tmp_path) -> None:
    started = time.monotonic()
    with LiveServer(tmp_path / "e2e.db", KEY) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        now = time.time()
        tokens, div, like = _network(c, now)
        spec = {
            "name": NAME,
            "description": "Engagement ranking against the chronological feed",
            "layer": "feed",
            "arms": [
                {"name": "control", "share": 0.5, "policy": "chronological"},
                {"name": "treatment", "share": 0.5, "policy": "engagement"},
            ],
            "guardrails": [
                {"metric": "divisive_share", "max_increase": 0.05},
                {"metric": "engagement", "max_decrease": 0.5},
            ],
        }
        # refusals name the field; only the service key may manage experiments
        bad = {**spec, "arms": [spec["arms"][0], {**spec["arms"][1], "policy": "no-such-policy"}]}
        r = c.post("/v1/experiments", json=bad, headers=H)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "arms.1.policy", r.text
        r = c.post("/v1/experiments", json={**spec, "traffic": 2}, headers=H)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "traffic", r.text
        assert c.post("/v1/experiments", json=spec).status_code == 401
        p5 = {"Authorization": f"Bearer {tokens['p5']}"}
        assert c.post("/v1/experiments", json=spec, headers=p5).status_code == 401
        assert c.post("/v1/experiments", json=spec, headers=H).status_code == 201
        assert c.get(f"/v1/experiments/{NAME}/report", headers=H).status_code == 409  # not started
        r = c.post(f"/v1/experiments/{NAME}/start", headers=H)
        assert r.status_code == 200 and r.json()["status"] == "running" and r.json()["buckets"] == [0, 10_000]
        assert c.post(f"/v1/experiments/{NAME}/start", headers=H).status_code == 409
        assert c.post("/v1/experiments", json=spec, headers=H).status_code == 409  # a started one cannot change

        people = [f"p{i}" for i in range(PEOPLE)]
        with ThreadPoolExecutor(8) as pool:
            policies = dict(
                zip(
                    people,
                    pool.map(lambda i: _visit(c, f"p{i}", tokens[f"p{i}"], div, like[f"p{i}"], i), range(PEOPLE)),
                )
            )
            # some come back: each person is exposed once, whatever they do next
            list(
                pool.map(
                    lambda i: _visit(c, f"p{i}", tokens[f"p{i}"], div, like[f"p{i}"], 1000 + i), range(0, PEOPLE, 3)
                )
            )
        assert all(policies[f"p{i}"] == "chronological" for i in range(CHOOSERS))  # their own choice stands

        r = c.get(f"/v1/experiments/{NAME}/report", headers=H)
        assert r.status_code == 200, r.text
        rep = r.json()
        served = {arm: sum(1 for u in people[CHOOSERS:] if policies[u] == pol) for arm, pol in
                  (("control", "chronological"), ("treatment", "engagement"))}  # fmt: skip
        assert rep["exposed"] == served and sum(served.values()) == PEOPLE - CHOOSERS
        assert min(served.values()) > 100  # both arms got people
        assert rep["srm"]["mismatch"] is False and rep["srm"]["p_value"] > 0.001
        assert rep["excluded"]["total"] == CHOOSERS  # they used the feed while it ran, their own choice kept
        assert rep["metrics"]["impressions"]["arms"]["control"]["n"] == served["control"]
        shares = {a: rep["metrics"]["divisive_share"]["arms"][a]["mean"] for a in ("control", "treatment")}
        assert shares["treatment"] > 2 * shares["control"] > 0, shares
        cmp = rep["metrics"]["divisive_share"]["comparisons"]["treatment"]
        assert cmp["rel_low"] > 0.05 and cmp["sequential"]["p_value"] < 0.05
        eng = rep["metrics"]["engagement"]["comparisons"]["treatment"]["cuped"]
        assert eng["variance_reduction"] > 0.1, eng  # the pre-exposure likes explain part of the variance
        guard = {(g["metric"], g["arm"]): g["verdict"] for g in rep["guardrails"]}
        assert guard[("divisive_share", "treatment")] == "breach"
        assert guard[("engagement", "treatment")] != "breach"  # engagement rose
        assert rep["verdict"] == "breach" and any("divisive_share" in n for n in rep["notes"])
        assert rep["metrics"]["worth_it"]["arms"]["treatment"]["n"] == served["treatment"]
        assert rep["metrics"]["retention"]["arms"]["control"]["n"] == 0  # nobody exposed 7 days ago yet
        page = c.get(f"/v1/experiments/{NAME}/report.html", headers=H)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "breach" in page.text and "divisive_share" in page.text

        # a person sees their experiment and arm; one who chose their feed sees that it does not change it
        u = next(u for u in people[CHOOSERS:] if policies[u] == "engagement")
        r = c.get(f"/v1/users/{u}/experiments", headers={"Authorization": f"Bearer {tokens[u]}"})
        mine = r.json()["experiments"]
        assert r.status_code == 200 and [(e["experiment"], e["arm"], e["excluded"]) for e in mine] == [
            (NAME, "treatment", None)
        ]
        assert mine[0]["exposed_at"] is not None and "engagement" in mine[0]["sets"]
        r = c.get("/v1/users/p0/experiments", headers={"Authorization": f"Bearer {tokens['p0']}"})
        assert r.json()["experiments"][0]["excluded"].startswith("you chose your feed yourself")
        assert c.get(f"/v1/users/{u}/experiments", headers=p5).status_code == 401  # not someone else's

        # stopped: nobody is served by it any more (the control's people get the default feed), the report stays
        assert c.post(f"/v1/experiments/{NAME}/stop", headers=H).json()["status"] == "stopped"
        v = next(u for u in people[CHOOSERS:] if policies[u] == "chronological")
        after = c.get(f"/v1/users/{v}/feed", params={"limit": 5}, headers={"Authorization": f"Bearer {tokens[v]}"})
        assert after.json()["policy"] == "engagement"
        again = c.get(f"/v1/experiments/{NAME}/report", headers=H).json()
        assert again["exposed"] == served and again["experiment"]["status"] == "stopped"
        listed = c.get("/v1/experiments", headers=H).json()["experiments"]
        assert [(e["name"], e["status"]) for e in listed] == [(NAME, "stopped")]
    assert time.monotonic() - started < 60
