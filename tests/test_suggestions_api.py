"""GET /v1/users/{id}/suggestions over HTTP: never the person, whom they follow, block or mute, nor whoever blocks
them; contacts only with both opt-ins; every item explained; the bridging policy's reserved place; 4xx naming the
field for bad parameters and 404 for an unknown person."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings
from glassfeed.suggest.graph import contact_hash

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
COMMUNITY = {"alice": 0, "bob": 0, "carol": 0, "dan": 0, "erin": 0, "frank": 1, "gina": 0, "hank": 0, "ivy": 2}
FOLLOWS = [("alice", "bob"), ("alice", "gina"), ("frank", "alice"), ("ivy", "alice")]
FOLLOWS += [("bob", v) for v in ("carol", "dan", "erin", "hank")] + [("gina", v) for v in ("carol", "dan", "hank")]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = load_settings(store={"path": tmp_path_factory.mktemp("sugg") / "s.db"}, api={"key": KEY})
    with TestClient(create_app(settings)) as c:
        users = [{"id": u, "handle": u, "community": k} for u, k in COMMUNITY.items()]
        users += [{"id": u, "handle": u} for u in ("jack", "kim")]
        r = c.post("/v1/users", json={"users": users}, headers=H)
        assert r.status_code in (200, 201), r.text
        c.tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        events = [{"kind": "follow", "user": u, "target_user": v} for u, v in FOLLOWS]
        events += [
            {"kind": "block", "user": "alice", "target_user": "dan"},  # she blocked dan
            {"kind": "block", "user": "erin", "target_user": "alice"},  # erin blocks her
            {"kind": "mute", "user": "alice", "target_user": "hank"},  # she muted hank
        ]
        r = c.post("/v1/events", json=events, headers=H)
        assert r.status_code == 200, r.text
        yield c


def _ids(r):
    assert r.status_code == 200, r.text
    return [i["user"] for i in r.json()["items"]]


def test_suggestions_exclude_self_followed_blocked_muted_and_blocking(client):
    r = client.get("/v1/users/alice/suggestions", headers=H)
    got = _ids(r)
    assert "carol" in got and "frank" in got and "ivy" in got
    assert not {"alice", "bob", "gina", "dan", "erin", "hank"} & set(got)
    body = r.json()
    assert body["policy"] == "growth" and body["ranked_by"]
    for item in body["items"]:
        assert item["explanation"] and item["reasons"] and item["found_by"]
    carol = next(i for i in body["items"] if i["user"] == "carol")
    assert carol["explanation"].startswith("2 people you follow follow them")
    assert carol["features"]["common_neighbours"] == 2
    frank = next(i for i in body["items"] if i["user"] == "frank")
    assert "follows you" in frank["explanation"].lower()
    # the user's own token works; someone else's does not
    tok = {"Authorization": f"Bearer {client.tokens['alice']}"}
    assert client.get("/v1/users/alice/suggestions", headers=tok).status_code == 200
    assert client.get("/v1/users/bob/suggestions", headers=tok).status_code == 401


def test_bridging_keeps_a_place_outside_the_community(client):
    growth = client.get("/v1/users/alice/suggestions?limit=1&policy=growth", headers=H).json()["items"]
    bridging = client.get("/v1/users/alice/suggestions?limit=1&policy=bridging", headers=H).json()["items"]
    assert [i["user"] for i in growth] == ["carol"]  # two shared follows: first by Adamic-Adar
    assert len(bridging) == 1 and bridging[0]["cross_community"] and bridging[0]["user"] in ("frank", "ivy")
    assert "outside your community" in bridging[0]["explanation"]


def test_contacts_only_when_both_opted_in(client):
    jack_own, kim_own = contact_hash("jack@example.org"), contact_hash("kim@example.org")
    put = lambda u, body: client.put(f"/v1/users/{u}/contacts", json=body, headers=H)  # noqa: E731
    assert put("jack", {"opt_in": True, "own": [jack_own], "hashes": [kim_own]}).json()["hashes"] == 1
    assert put("kim", {"opt_in": False}).status_code == 200  # kim did not opt in
    assert "kim" not in _ids(client.get("/v1/users/jack/suggestions", headers=H))
    put("kim", {"opt_in": True, "own": [kim_own], "hashes": []})
    items = client.get("/v1/users/jack/suggestions", headers=H).json()["items"]
    kim = next(i for i in items if i["user"] == "kim")
    assert "contacts you uploaded" in kim["explanation"] and kim["found_by"] == ["contacts"]
    assert "jack" not in _ids(client.get("/v1/users/kim/suggestions", headers=H))  # kim uploaded no contacts
    put("jack", {"opt_in": False})
    assert "kim" not in _ids(client.get("/v1/users/jack/suggestions", headers=H))
    assert client.get("/v1/users/jack/contacts", headers=H).json() == {"opt_in": False, "own": 0, "hashes": 0}
    bad = put("jack", {"opt_in": True, "hashes": ["not-a-hash"]})
    assert bad.status_code == 422 and "hashes" in bad.text


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=51", "limit"), ("limit=x", "limit"), ("policy=nope", "policy")],
)
def test_bad_parameters_are_422_naming_the_field(client, query, field):
    r = client.get(f"/v1/users/alice/suggestions?{query}", headers=H)
    assert r.status_code == 422, r.text
    assert any(d["field"].endswith(field) for d in r.json()["detail"])


def test_unknown_user_is_404(client):
    r = client.get("/v1/users/nobody/suggestions", headers=H)
    assert r.status_code == 404


def test_policies_are_listed_with_their_statements(client):
    pols = client.get("/v1/suggestion-policies").json()["policies"]
    assert {p["name"] for p in pols} >= {"growth", "bridging"}
    assert all("Never suggested" in p["statement"] for p in pols)
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/v1/users/{user_id}/suggestions"]["get"]["parameters"]
    assert "bridging" in str(next(p for p in params if p["name"] == "policy")["schema"])
