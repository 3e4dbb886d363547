"""Moderation over HTTP: notices (DSA Art. 16), reports, the queue, decisions with statements of reasons, appeals to
another moderator, reversals, object-level authorisation, community notes and the transparency report."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
MODS = {"ana": "mod-key-ana", "ben": "mod-key-ben"}
ANA = {"Authorization": f"Bearer {MODS['ana']}"}
BEN = {"Authorization": f"Bearer {MODS['ben']}"}
NOTICE = {
    "location": "https://example.social/post/p1",
    "category": "illegal_or_harmful_speech",
    "explanation": "It incites hatred against a group.",
    "notifier_name": "Nora Notifier",
    "notifier_email": "nora@example.org",
    "good_faith": True,
}


@pytest.fixture()
def client(tmp_path):
    settings = load_settings(
        store={"path": tmp_path / "mod.db"},
        api={"key": KEY},
        moderation={"moderator_keys": MODS},
        serving={"clock": "wall"},
    )
    app = create_app(settings)
    with TestClient(app) as c:
        users = [{"id": u} for u in ("alice", "bob", "carol", "dan", "erin")]
        c.tokens = {u["id"]: u["token"] for u in c.post("/v1/users", json={"users": users}, headers=H).json()["users"]}
        now = time.time() - 60
        posts = [
            {"id": f"p{i}", "author": "alice", "text": f"post number {i} #science", "created_at": now}
            for i in (1, 2, 3)
        ]
        assert c.post("/v1/posts", json=posts, headers=H).status_code == 201
        yield c


def tok(c, user):
    return {"Authorization": f"Bearer {c.tokens[user]}"}


def _err(resp, status):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}
    return body["detail"]


def _public_ids(c):
    return [i["post"] for i in c.get("/v1/feed", params={"limit": 50}).json()["items"]]


def _home_ids(c, user):
    return [
        i["post"] for i in c.get(f"/v1/users/{user}/feed", params={"limit": 50}, headers=tok(c, user)).json()["items"]
    ]


# ---------------------------------------------------------------------------------------------- notices
def test_notice_names_each_missing_field_and_writes_nothing(client):
    detail = _err(client.post("/v1/notices", json={"location": "p1"}), 422)
    assert {d["field"] for d in detail} == {"category", "explanation", "notifier_name", "notifier_email", "good_faith"}
    bad = [
        ({**NOTICE, "notifier_email": "not-an-address"}, "notifier_email", 422),
        ({**NOTICE, "good_faith": False}, "good_faith", 422),
        ({**NOTICE, "category": "spam"}, "category", 422),  # against the terms: a report, not a notice
        ({**NOTICE, "location": "https://example.social/post/nope"}, "location", 404),
        ({**NOTICE, "extra": 1}, "extra", 422),
    ]
    for body, field, status in bad:
        detail = _err(client.post("/v1/notices", json=body), status)
        assert detail[0]["field"] == field, (field, detail)
    assert client.get("/v1/moderation/queue", headers=ANA).json()["cases"] == []


def test_notice_is_queued_and_its_notifier_can_follow_it(client):
    r = client.post("/v1/notices", json=NOTICE)  # no account needed
    assert r.status_code == 201, r.text
    notice, token = r.json()["notice"], r.json()["token"]
    cases = client.get("/v1/moderation/queue", headers=ANA).json()["cases"]
    assert [c["subject"] for c in cases] == [{"type": "post", "id": "p1"}]
    assert cases[0]["cases"][0]["explanation"] == NOTICE["explanation"]
    status = client.get(f"/v1/notices/{notice}", headers={"Authorization": f"Bearer {token}"}).json()
    assert status["status"] == "open" and status["statements"] == []
    _err(client.get(f"/v1/notices/{notice}", headers={"Authorization": "Bearer wrong"}), 403)
    _err(client.get(f"/v1/notices/{notice}"), 401)


# ---------------------------------------------------------------------------------------------- reports
def test_reporter_stops_seeing_the_post_at_once(client):
    assert "p2" in _home_ids(client, "bob")
    r = client.post("/v1/users/bob/reports", json={"post": "p2", "category": "harassment"}, headers=tok(client, "bob"))
    assert r.status_code == 201, r.text
    assert "p2" not in _home_ids(client, "bob")
    assert "p2" in _home_ids(client, "carol")  # one report hides it from the reporter only
    _err(client.post("/v1/users/bob/reports", json={"post": "p2"}, headers=tok(client, "bob")), 422)
    _err(client.post("/v1/users/bob/reports", json={"post": "zz", "category": "spam"}, headers=tok(client, "bob")), 404)
    _err(
        client.post("/v1/users/bob/reports", json={"post": "p2", "category": "spam"}, headers=tok(client, "carol")),
        401,
    )


def test_rules_set_off_by_own_reports_are_logged_even_when_the_tail_folds_them_first(client):
    """The tail (``catch_up``, which never logs) may fold a report between its commit and the writer's listener:
    the writer still logs the automated records of the rules it set off (seen once in CI under load: the reach was
    restricted with no record in the log)."""
    mod = client.app.state.moderation
    listeners = mod.ingestor.moderation_listeners
    i = listeners.index(mod._on_records)

    def tail_first(records):
        mod.catch_up()  # the tail thread's round, landing first
        mod._on_records(records)

    listeners[i] = tail_first
    for u in ("bob", "carol", "dan"):
        r = client.post(f"/v1/users/{u}/reports", json={"post": "p3", "category": "spam"}, headers=tok(client, u))
        assert r.status_code == 201, r.text
    assert "p3" not in _public_ids(client)
    log = client.get("/v1/moderation/log", headers=ANA).json()["records"]
    fired = [r["body"]["rule"] for r in log if r["kind"] == "automated"]
    assert sorted(fired) == ["reported-by-many", "reported-review"]  # each once


def test_three_reports_restrict_reach_on_public_surfaces_and_queue_it(client):
    for u in ("bob", "carol", "dan"):
        client.post(f"/v1/users/{u}/reports", json={"post": "p3", "category": "spam"}, headers=tok(client, u))
    assert "p3" not in _public_ids(client)  # rule reported-by-many: followers only on public surfaces
    assert "p3" in _home_ids(client, "erin")  # home is governed by the review rule only
    cases = client.get("/v1/moderation/queue", headers=ANA).json()["cases"]
    (case,) = [c for c in cases if c["subject"]["id"] == "p3"]
    assert len(case["cases"]) >= 3 and case["visibility"]["public"]["action"] == "followers_only"
    log = client.get("/v1/moderation/log", headers=ANA).json()["records"]
    assert {r["body"].get("rule") for r in log if r["kind"] == "automated"} >= {"reported-by-many", "reported-review"}
    statements = client.get("/v1/users/alice/statements", headers=tok(client, "alice")).json()["statements"]
    assert any(s["automated_decision"] == "AUTOMATED_DECISION_FULLY" for s in statements)


# ---------------------------------------------------------------------------------------------- decisions
def _decide(c, who, **kw):
    body = {
        "post": "p1",
        "action": "drop",
        "ground": "illegal",
        "grounds_explanation": "Incitement to hatred (national criminal code, s. 130)",
        "category": "illegal_or_harmful_speech",
        "facts": "The post calls for violence against a protected group.",
        **kw,
    }
    return c.post("/v1/moderation/decisions", json={"decisions": [body]}, headers=who)


def test_queue_orders_trusted_flaggers_first_then_severity_times_reach(client):
    for u in ("bob", "carol"):
        client.post(f"/v1/users/{u}/reports", json={"post": "p2", "category": "spam"}, headers=tok(client, u))
    client.post("/v1/users/bob/reports", json={"post": "p3", "category": "violence"}, headers=tok(client, "bob"))
    client.post("/v1/events", json=[{"kind": "impression", "user": "erin", "post": "p2"}] * 1, headers=H)
    cases = client.get("/v1/moderation/queue", headers=ANA).json()["cases"]
    prios = [c["priority"] for c in cases]
    assert prios == sorted(prios, reverse=True)
    assert cases[0]["severity"] >= 0.9 or cases[0]["expected_reach"] > cases[-1]["expected_reach"]


def test_decision_statement_of_reasons_fields_and_effect(client):
    r = client.post("/v1/notices", json=NOTICE)
    notice, token = r.json()["notice"], r.json()["token"]
    _err(_decide(client, H), 403)  # the service key is not a moderator key
    _err(_decide(client, ANA, ground="illegal", category="spam"), 422)
    _err(_decide(client, ANA, action="downrank"), 422)  # a downrank needs a factor
    r = _decide(client, ANA)
    assert r.status_code == 201, r.text
    (sor,) = r.json()["statements"]
    for field in (
        "decision_visibility",
        "decision_ground",
        "illegal_content_legal_ground",
        "illegal_content_explanation",
        "category",
        "content_type",
        "decision_facts",
        "source_type",
        "automated_detection",
        "automated_decision",
        "territorial_scope",
        "application_date",
        "content_date",
        "redress",
    ):
        assert sor[field] not in (None, "", []), field
    assert sor["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert sor["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT" and sor["source_type"] == "SOURCE_ARTICLE_16"
    assert sor["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED" and sor["automated_detection"] is False
    assert "p1" not in _home_ids(client, "bob") and "p1" not in _public_ids(client)
    assert client.get("/v1/moderation/queue", headers=ANA).json()["cases"] == []  # the notice is resolved
    # the author sees it; the notifier follows it with the notice's token
    mine = client.get("/v1/users/alice/statements", headers=tok(client, "alice")).json()["statements"]
    assert [s["id"] for s in mine if s["decided_by"] == "a moderator"] == [sor["id"]]
    # the removal is a strike, and alice's account is days old: rule new-account-with-strikes limits her other
    # posts to her followers on public surfaces, each with its own automated statement
    auto = [s for s in mine if s["automated_decision"] == "AUTOMATED_DECISION_FULLY"]
    assert sorted(s["subject"]["id"] for s in auto) == ["p1", "p2", "p3"]
    assert {s["action"] for s in auto} == {"followers_only"} and "p2" not in _public_ids(client)
    told = client.get(f"/v1/notices/{notice}", headers={"Authorization": f"Bearer {token}"}).json()
    assert told["status"] == "decided" and told["statements"][0]["id"] == sor["id"]


def test_bulk_decisions_are_all_or_nothing(client):
    ok = {
        "post": "p2",
        "action": "label",
        "ground": "incompatible",
        "grounds_explanation": "terms 4.2",
        "category": "spam",
        "facts": "spam",
    }
    bad = {**ok, "post": "p3", "action": "explode"}
    detail = _err(client.post("/v1/moderation/decisions", json={"decisions": [ok, bad]}, headers=ANA), 422)
    assert detail[0]["index"] == 1 and detail[0]["field"] == "action"
    assert not [r for r in client.get("/v1/moderation/log", headers=ANA).json()["records"] if r["kind"] == "decision"]
    r = client.post("/v1/moderation/decisions", json={"decisions": [ok, {**ok, "post": "p3"}]}, headers=ANA)
    assert r.status_code == 201 and len(r.json()["statements"]) == 2


# ---------------------------------------------------------------------------------------------- appeals
def test_appeal_goes_to_another_moderator_and_reversal_restores_reach(client):
    sor = _decide(client, ANA).json()["statements"][0]
    assert "p1" not in _public_ids(client)
    sid = sor["id"]
    _err(client.post(f"/v1/users/bob/statements/{sid}/appeals", json={"text": "x"}, headers=tok(client, "bob")), 403)
    _err(client.post(f"/v1/users/alice/statements/{sid}/appeals", json={}, headers=tok(client, "alice")), 422)
    r = client.post(
        f"/v1/users/alice/statements/{sid}/appeals", json={"text": "It was satire."}, headers=tok(client, "alice")
    )
    assert r.status_code == 201, r.text
    appeal = r.json()["id"]
    _err(
        client.post(f"/v1/users/alice/statements/{sid}/appeals", json={"text": "again"}, headers=tok(client, "alice")),
        409,
    )
    listed = client.get("/v1/moderation/appeals", headers=ANA).json()["appeals"]
    assert [a["id"] for a in listed] == [appeal] and listed[0]["you_may_decide"] is False
    body = {"outcome": "reversed", "explanation": "Satire, not incitement."}
    _err(client.post(f"/v1/moderation/appeals/{appeal}/decision", json=body, headers=ANA), 403)  # the decider
    r = client.post(f"/v1/moderation/appeals/{appeal}/decision", json=body, headers=BEN)
    assert r.status_code == 200 and r.json()["status"] == "reversed"
    assert "p1" in _public_ids(client) and "p1" in _home_ids(client, "bob")  # reach restored
    st = client.get(f"/v1/users/alice/statements/{sid}", headers=tok(client, "alice")).json()
    assert st["reversed"] is True and st["appeals"][0]["status"] == "reversed"
    _err(client.post(f"/v1/moderation/appeals/{appeal}/decision", json=body, headers=BEN), 409)


# ---------------------------------------------------------------------------------------------- authorisation
def test_object_level_authorisation(client):
    sid = _decide(client, ANA).json()["statements"][0]["id"]
    for who in (tok(client, "bob"), H, {}):  # a person, the service key, nobody
        assert client.get("/v1/moderation/queue", headers=who).status_code in (401, 403)
        assert client.get("/v1/moderation/log", headers=who).status_code in (401, 403)
    _err(client.get(f"/v1/users/bob/statements/{sid}", headers=tok(client, "bob")), 403)  # alice's, not bob's
    _err(client.get(f"/v1/users/alice/statements/{sid}", headers=tok(client, "bob")), 401)  # bob's token for alice
    assert client.get(f"/v1/users/alice/statements/{sid}", headers=tok(client, "alice")).status_code == 200
    # a moderator key opens nothing else: not the service's writes, nor anyone's data
    assert client.post("/v1/posts", json=[{"id": "px", "author": "bob", "text": "x"}], headers=ANA).status_code == 401
    assert client.post("/v1/admin/train", headers=ANA).status_code == 401
    assert client.get("/v1/users/alice/feed", headers=ANA).status_code == 401


# ---------------------------------------------------------------------------------------------- transparency
def test_transparency_report_counts(client):
    client.post("/v1/notices", json=NOTICE)
    sid = _decide(client, ANA).json()["statements"][0]["id"]
    client.post(f"/v1/users/alice/statements/{sid}/appeals", json={"text": "no"}, headers=tok(client, "alice"))
    appeal = client.get("/v1/moderation/appeals", headers=BEN).json()["appeals"][0]["id"]
    client.post(
        f"/v1/moderation/appeals/{appeal}/decision", json={"outcome": "upheld", "explanation": "ok"}, headers=BEN
    )
    rep = client.get("/v1/transparency", params={"from": "2000-01-01", "to": "2100-01-01"}).json()
    assert rep["notices"] == {"total": 1, "by_category": {"illegal_or_harmful_speech": 1}, "from_trusted_flaggers": 0}
    # one removal by a moderator; its strike made rule new-account-with-strikes act on alice's three posts
    assert rep["actions"]["by_type"] == {"drop": 1, "followers_only": 3}
    assert rep["actions"]["by_ground"] == {"illegal": 1, "incompatible": 3}
    assert rep["actions"]["automated_share"] == 0.75 and rep["actions"]["median_hours_notice_to_action"] >= 0
    assert rep["appeals"] == {
        "received": 1,
        "decided": 1,
        "reversed": 0,
        "upheld": 1,
        "median_hours_to_decide": rep["appeals"]["median_hours_to_decide"],
    }
    html = client.get("/v1/transparency.html", params={"from": "2000-01-01", "to": "2100-01-01"})
    assert html.status_code == 200 and "Transparency report" in html.text
    _err(client.get("/v1/transparency", params={"from": "yesterday", "to": "2100-01-01"}), 422)
    assert "Automated rules" in client.get("/v1/moderation/policy").text
