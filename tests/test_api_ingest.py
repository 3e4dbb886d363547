"""HTTP ingestion: auth, batch/single bodies, all-or-nothing batches, and a clear 4xx for every bad input."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.domain import EVENT_FIELDS, KIND_NAMES
from glassfeed.settings import load_settings

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture()
def client(tmp_path):
    app = create_app(load_settings(store={"path": tmp_path / "api.db"}, api={"key": KEY}))
    with TestClient(app) as c:
        c.tokens = {
            u["id"]: u["token"]
            for u in c.post(
                "/v1/users",
                json={"users": [{"id": "alice", "interests": ["science"]}, {"id": "bob"}, {"id": "carol"}]},
                headers=H,
            ).json()["users"]
        }
        c.post(
            "/v1/posts",
            json=[
                {"id": "p1", "author": "alice", "text": "hello #science"},
                {"id": "p2", "author": "bob", "text": "second"},
            ],
            headers=H,
        )
        yield c


def _error(resp, status):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str)
    return body["detail"]


def test_events_batch_is_acknowledged_and_counted(client):
    r = client.post(
        "/v1/events",
        json=[
            {"kind": "like", "user": "bob", "post": "p1", "id": "e1"},
            {"kind": "dwell", "user": "carol", "post": "p1", "value": 1500},
            {"kind": "follow", "user": "carol", "target_user": "alice"},
        ],
        headers=H,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0 and body["ids"][0] == "e1"
    assert body["last_seq"] - body["first_seq"] == 2
    assert client.app.state.store.count("follows") == 1
    again = client.post(
        "/v1/events", json={"events": [{"kind": "like", "user": "bob", "post": "p1", "id": "e1"}]}, headers=H
    ).json()
    assert again["accepted"] == 0 and again["duplicates"] == 1
    assert client.get("/v1/stats").json()["events"] == 3


def test_bad_batch_writes_nothing_and_names_each_item(client):
    future = time.time() + 7 * 86400
    r = client.post(
        "/v1/events",
        json=[
            {"kind": "like", "user": "bob", "post": "p1"},
            {"kind": "like", "user": "nobody", "post": "p1"},
            {"kind": "like", "user": "bob", "post": "missing"},
            {"kind": "teleport", "user": "bob", "post": "p1"},
            {"kind": "like", "user": "bob", "post": "p1", "ts": future},
            {"kind": "like", "user": "bob", "post": "p1", "position": "top"},
        ],
        headers=H,
    )
    detail = _error(r, 422)
    got = {(d["index"], d["field"]) for d in detail}
    assert {(1, "user"), (2, "post"), (3, "kind"), (4, "ts"), (5, "position")} <= got
    assert all(d["index"] != 0 for d in detail)
    assert any("future" in d["reason"] for d in detail if d["field"] == "ts")
    assert client.app.state.store.count("events") == 0  # the good first item was not written either


@pytest.mark.parametrize(
    "body,status,field",
    [
        (b'[{"kind": ', 400, "body"),
        (b"", 400, "body"),
        (b'"just a string"', 422, "body"),
        (b'{"events": 5}', 422, "events"),
    ],
)
def test_malformed_bodies_are_4xx(client, body, status, field):
    detail = _error(client.post("/v1/events", content=body, headers={**H, "content-type": "application/json"}), status)
    assert detail[0]["field"] == field and detail[0]["index"] == -1


def test_batch_too_large_is_413(client):
    n = client.app.state.settings.ingest.max_batch + 1
    detail = _error(client.post("/v1/events", json=[{"kind": "like", "user": "bob", "post": "p1"}] * n, headers=H), 413)
    assert "exceeds" in detail[0]["reason"]


def test_auth_is_required_for_writes_and_user_reads(client):
    ev = [{"kind": "like", "user": "bob", "post": "p1"}]
    _error(client.post("/v1/events", json=ev), 401)
    _error(client.post("/v1/events", json=ev, headers={"X-API-Key": "wrong"}), 401)
    assert client.post("/v1/events", json=ev, headers={"X-API-Key": KEY}).status_code == 200
    # a user's token reads that user, not another one
    tok = {"Authorization": f"Bearer {client.tokens['alice']}"}
    me = client.get("/v1/users/alice", headers=tok)
    assert me.status_code == 200 and me.json()["interests"] == ["science"] and me.json()["posts"] == 1
    _error(client.get("/v1/users/bob", headers=tok), 401)
    _error(client.get("/v1/users/alice"), 401)
    assert client.get("/v1/users/bob", headers=H).json()["events"] == 1
    _error(client.get("/v1/users/nobody", headers=H), 404)
    # user tokens cannot write
    _error(client.post("/v1/events", json=ev, headers=tok), 401)


def test_duplicate_entities_are_409(client):
    detail = _error(client.post("/v1/users", json={"id": "alice"}, headers=H), 409)
    assert detail == [{"index": 0, "field": "id", "reason": "user 'alice' already exists"}]
    _error(client.post("/v1/posts", json={"id": "p1", "author": "bob", "text": "x"}, headers=H), 409)


def test_post_validation(client):
    limit = client.app.state.settings.ingest.max_text_chars
    detail = _error(
        client.post(
            "/v1/posts",
            json=[
                {"id": "long", "author": "bob", "text": "x" * (limit + 1)},
                {"id": "orphan", "author": "ghost", "text": "hi"},
                {"id": "typed", "author": "bob", "text": 42},
            ],
            headers=H,
        ),
        422,
    )
    assert [(d["index"], d["field"]) for d in detail] == [(0, "text"), (1, "author"), (2, "text")]
    assert client.app.state.store.post_idx("long") is None


def test_follows_convenience(client):
    r = client.post(
        "/v1/follows", json=[{"user": "bob", "target": "alice"}, {"user": "carol", "target": "bob"}], headers=H
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert client.get("/v1/users/alice", headers=H).json()["followers"] == 1
    detail = _error(client.post("/v1/follows", json=[{"user": "bob", "target": "ghost"}], headers=H), 422)
    assert detail[0]["field"] == "target"


def test_openapi_documents_event_schema(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants = body["oneOf"][0]["items"]["oneOf"]  # one per kind, generated from the event specification
    assert [v["properties"]["kind"]["const"] for v in variants] == list(KIND_NAMES)
    for item in variants:
        assert list(item["properties"]) == [f.name for f in EVENT_FIELDS]
        assert {"kind", "user"} <= set(item["required"]) and item["additionalProperties"] is False
    dwell = variants[KIND_NAMES.index("dwell")]
    assert dwell["required"] == ["kind", "post", "user", "value"] and "anyOf" not in dwell["properties"]["value"]
    assert client.get("/docs").status_code == 200
    assert client.get("/healthz").json()["ok"] is True


def test_unconfigured_key_refuses_writes(tmp_path, monkeypatch):
    monkeypatch.delenv("GLASSFEED_API_KEY", raising=False)
    app = create_app(load_settings(store={"path": tmp_path / "nokey.db"}))
    with TestClient(app) as c:
        assert c.app.state.settings.api_key is None
        detail = _error(c.post("/v1/users", json={"id": "x"}, headers=H), 401)
        assert detail == []


def test_training_with_too_little_history_is_409_not_500(client):
    r = client.post("/v1/admin/train", headers=H)
    assert r.status_code == 409, r.text
    assert r.json()["detail"][0]["field"] == "store" and "too few" in r.json()["detail"][0]["reason"]
