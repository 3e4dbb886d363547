"""The published OpenAPI describes what the server answers (issue 17: the schemathesis mismatches)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.feed.policy import HEADS
from glassfeed.settings import load_settings, packaged_settings

KEY = "contract-key"
KEYH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    db = tmp_path_factory.mktemp("contract") / "api.db"
    app = create_app(load_settings(store={"path": db}, api={"key": KEY}))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return client.app.openapi()  # type: ignore[attr-defined]


def _op(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return spec["paths"][path][method]


def _json_schema(op: dict[str, Any], status: str) -> dict[str, Any]:
    return op["responses"][status]["content"]["application/json"]["schema"]


FEEDS = ["/v1/feed", "/v1/users/{user_id}/feed", "/v1/users/{user_id}/feed/{post_id}/why", "/v1/users/{user_id}/data"]


@pytest.mark.parametrize("path", FEEDS)
def test_feed_responses_are_objects(spec: dict[str, Any], path: str) -> None:
    assert _json_schema(_op(spec, "get", path), "200")["type"] == "object"


def test_every_422_is_the_project_error_body(spec: dict[str, Any], client: TestClient) -> None:
    assert "HTTPValidationError" not in json.dumps(spec)
    ops = [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    for path, method, op in ops:
        assert _json_schema(op, "422") == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
    # and the server answers that shape
    r = client.delete("/v1/users/nobody/data?posts=maybe", headers={"X-API-Key": KEY})
    assert r.status_code in (404, 422)
    assert set(r.json()) == {"error", "detail"}
    r = client.post("/v1/users", json={"id": "u1"}, headers={"X-API-Key": KEY})
    assert r.status_code == 201
    r = client.delete("/v1/users/u1/data?posts=maybe", headers={"X-API-Key": KEY})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "posts"


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/v1/policies/{name}", {"404"}),
        ("get", "/v1/policies/{name}/statement", {"404"}),
        ("get", "/v1/users/{user_id}/feed/{post_id}/why", {"401", "404"}),
        ("get", "/v1/users/{user_id}/data", {"401", "404"}),
        ("delete", "/v1/users/{user_id}/data", {"401", "404"}),
        ("get", "/v1/users/{user_id}/muted-words", {"401", "404"}),
        ("put", "/v1/users/{user_id}/muted-words", {"400", "401", "404"}),
        ("get", "/v1/users/{user_id}/prefs", {"401", "404"}),
        ("put", "/v1/users/{user_id}/prefs", {"400", "401", "404"}),
        ("post", "/v1/users/{user_id}/events", {"400", "401", "403"}),
        ("post", "/v1/admin/train", {"401"}),
        ("get", "/v1/feed", {"400", "413", "429"}),
    ],
)
def test_error_statuses_documented(spec: dict[str, Any], method: str, path: str, statuses: set[str]) -> None:
    responses = _op(spec, method, path)["responses"]
    assert statuses <= set(responses)
    for code in statuses:
        assert _json_schema(_op(spec, method, path), code) == {"$ref": "#/components/schemas/ErrorOut"}


def test_undocumented_statuses_are_real(client: TestClient) -> None:
    """The statuses documented above are what the server answers."""
    assert client.get("/v1/policies/no-such-policy").status_code == 404
    assert client.get("/v1/policies/no-such-policy/statement").status_code == 404
    client.post("/v1/users", json={"id": "u2"}, headers={"X-API-Key": KEY})
    assert client.post("/v1/users/u2/events", headers={"X-API-Key": KEY}).status_code == 400
    assert client.post("/v1/users/u2/events", content=b"{", headers={"X-API-Key": KEY}).status_code == 400
    assert client.post("/v1/admin/train", headers={"X-API-Key": "not-the-key"}).status_code == 401


@pytest.mark.parametrize(("path", "key"), [("/v1/users", "users"), ("/v1/posts", "posts"), ("/v1/events", "events")])
def test_empty_batches_are_documented_as_refused(spec: dict[str, Any], client: TestClient, path: str, key: str) -> None:
    body = _op(spec, "post", path)["requestBody"]["content"]["application/json"]["schema"]
    arr, wrapped, _item = body["oneOf"]
    assert arr["minItems"] == 1
    assert wrapped["properties"][key]["minItems"] == 1
    assert client.post(path, json=[], headers={"X-API-Key": KEY}).status_code == 422


def test_muted_word_length_documented(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    words = schemas["MutedWordsIn"]["properties"]["words"]
    limits = packaged_settings().ingest
    assert words["items"]["maxLength"] == limits.max_muted_word_chars
    assert words["maxItems"] == limits.max_muted_words


def test_own_events_body_documented(spec: dict[str, Any], client: TestClient) -> None:
    """The body of a person's own events is documented (required; ``user`` optional), so a missing body (400)
    is not schema-valid."""
    body = _op(spec, "post", "/v1/users/{user_id}/events")["requestBody"]
    assert body["required"] is True
    arr, _wrapped, item = body["content"]["application/json"]["schema"]["oneOf"]
    assert arr["minItems"] == 1
    for variant in item["oneOf"]:  # one per kind: kind and that kind's target required, user optional
        assert "kind" in variant["required"] and "user" not in variant["required"] and "user" in variant["properties"]
    like = next(v for v in item["oneOf"] if v["properties"]["kind"].get("const") == "like")
    assert like["required"] == ["kind", "post"]
    client.post("/v1/users", json={"id": "u3"}, headers={"X-API-Key": KEY})
    r = client.post("/v1/users/u3/events", json={"kind": "like", "user": "u4", "post": "p"}, headers={"X-API-Key": KEY})
    assert r.status_code == 403


def test_policy_names_documented(spec: dict[str, Any], client: TestClient) -> None:
    """Only the served policies are schema-valid (another name is a 400)."""
    names = sorted(client.app.state.feed.policies)  # type: ignore[attr-defined]
    assert names
    prefs = spec["components"]["schemas"]["PrefsIn"]["properties"]["policy"]["anyOf"]
    assert {"type": "string", "enum": names} in prefs
    for path in ("/v1/feed", "/v1/users/{user_id}/feed"):
        (param,) = [p for p in _op(spec, "get", path)["parameters"] if p["name"] == "policy"]
        assert param["schema"]["enum"] == names
    assert client.get("/v1/feed", params={"policy": "no-such-policy"}).status_code == 400


def test_refused_ids_and_heads_documented(spec: dict[str, Any], client: TestClient) -> None:
    """An empty author / follow id and an unknown head are refused, and the schema says so."""
    schemas = spec["components"]["schemas"]
    posts = _op(spec, "post", "/v1/posts")["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert posts[2]["properties"]["author"]["minLength"] == 1
    follows = _op(spec, "post", "/v1/follows")["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert follows[2]["properties"]["user"]["minLength"] == follows[2]["properties"]["target"]["minLength"] == 1
    assert schemas["PrefsIn"]["properties"]["weights"]["propertyNames"]["enum"] == list(HEADS)
    assert client.post("/v1/posts", json=[{"author": ""}], headers={"X-API-Key": KEY}).status_code == 422
    client.post("/v1/users", json={"id": "u5"}, headers={"X-API-Key": KEY})
    r = client.put("/v1/users/u5/prefs", json={"policy": "engagement", "weights": {"nope": 1.0}}, headers=KEYH)
    assert r.status_code == 422
    alts = {a["properties"]["policy"]["const"]: a for a in schemas["PrefsIn"]["anyOf"][1:]}  # weights per policy
    assert alts["engagement"]["properties"]["weights"]["properties"]["reply"] == {
        "type": "number", "minimum": 0.0, "maximum": 20.0}  # fmt: skip
    assert alts["chronological"]["properties"]["weights"]["properties"] == {}  # no weight may be changed
    r = client.put("/v1/users/u5/prefs", json={"weights": {"reply": 1.0}}, headers=KEYH)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "policy"  # schema: weights need policy
    r = client.put("/v1/users/u5/prefs", json={"policy": "engagement", "weights": {"dwell": False}}, headers=KEYH)
    assert r.status_code == 422  # a boolean is not a number (the schema's "number"; fuzz: ST201)


def test_every_operation_documents_a_json_429(spec: dict[str, Any]) -> None:
    """Any request may meet a rate limit, answered as JSON whatever the route's own media type (fuzz: ST105 on the
    markdown statement route)."""
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "application/json" in op["responses"]["429"]["content"], (method, path)
