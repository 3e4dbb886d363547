"""Issue 17, bad input values: every one is a 4xx naming the field, before anything is written, and the state
loads from any row the store can hold (numeric ranges, ids with invisible characters, list sizes, cursors,
download names)."""

from __future__ import annotations

import time
from urllib.parse import unquote

import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.api.routes_feed import attachment
from glassfeed.domain import EventBatch, EventKind
from glassfeed.domain.spec import has_unsafe_chars
from glassfeed.feed.service import FeedError
from glassfeed.ingest import IngestError, Ingestor
from glassfeed.settings import load_settings, packaged_settings
from glassfeed.state import ServingState
from glassfeed.state.users import community_column
from glassfeed.store import open_store

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
LIMITS = packaged_settings().ingest
BAD_IDS = ["u1\u200b", "\u202e", "a\x00b", "a\u2066b\u2069", "\ufeffu1", "a\nb", "a\u2028b", "x\x7f"]


def _app(path):
    return create_app(load_settings(store={"path": path}, api={"key": KEY}))


@pytest.fixture()
def client(tmp_path):
    with TestClient(_app(tmp_path / "api.db")) as c:
        c.post("/v1/users", json=[{"id": "alice"}, {"id": "bob"}], headers=H).raise_for_status()
        c.post("/v1/posts", json=[{"id": "p1", "author": "alice", "text": "hello"}], headers=H).raise_for_status()
        yield c


def _refused(resp, field, status=422, index=0):
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert any(d["field"] == field and d["index"] == index for d in detail), detail
    return detail


# ---------------------------------------------------------------------------------------------- numeric ranges
@pytest.mark.parametrize("community", [2**31, 2**70, -1, LIMITS.max_community, True, 1.5, "3"])
def test_community_out_of_range_is_422_and_writes_nothing(client, community):
    r = client.post("/v1/users", json={"id": "carol", "community": community}, headers=H)
    _refused(r, "community")
    assert client.app.state.store.user_idx("carol") is None
    ok = client.post("/v1/users", json={"id": "carol", "community": LIMITS.max_community - 1}, headers=H)
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "path,item",
    [
        ("/v1/users", {"id": "carol", "x-unknown-property": 42}),
        ("/v1/posts", {"id": "p2", "author": "bob", "x-unknown-property": 42}),
    ],
)
def test_an_unknown_field_in_a_user_or_post_is_422_and_writes_nothing(client, path, item):
    """The schemas say ``additionalProperties: false``; the server refuses what they refuse (found by the fuzz)."""
    _refused(client.post(path, json=[item], headers=H), "x-unknown-property")
    assert client.app.state.store.user_idx("carol") is None and client.app.state.store.post_idx("p2") is None


@pytest.mark.parametrize("handle", [{}, [], 0, False])
def test_a_handle_that_is_not_a_string_is_422_even_when_falsy(client, handle):
    _refused(client.post("/v1/users", json={"id": "carol", "handle": handle}, headers=H), "handle")
    assert client.app.state.store.user_idx("carol") is None


def test_the_record_fields_the_ingestor_takes_are_the_schemas_fields():
    from glassfeed.api.schemas import PostIn, UserIn
    from glassfeed.ingest import POST_FIELDS, USER_FIELDS

    assert set(UserIn.model_fields) == USER_FIELDS and set(PostIn.model_fields) == POST_FIELDS


@pytest.mark.parametrize(
    "field,value", [("quality", "AAA"), ("divisiveness", {}), ("quality", True), ("quality", 2), ("divisiveness", -0.1)]
)
def test_post_scores_of_the_wrong_type_or_range_are_422(client, field, value):
    r = client.post("/v1/posts", json={"id": "p2", "author": "bob", field: value}, headers=H)
    _refused(r, field)
    assert client.app.state.store.post_idx("p2") is None


@pytest.mark.parametrize("value", [10**400, float("nan"), float("inf"), [0.5]])
def test_post_scores_python_callers_cannot_pass_either(tmp_path, value):
    """Importers call the Ingestor directly, with values JSON cannot carry."""
    ing = Ingestor(open_store(tmp_path / "s.db"))
    ing.create_users([{"id": "a"}])
    with pytest.raises(IngestError) as e:
        ing.create_posts([{"id": "p", "author": "a", "quality": value}])
    assert [(x.index, x.field) for x in e.value.errors] == [(0, "quality")]
    assert ing.store.count("posts") == 0


def test_post_lang_must_be_a_short_string(client):
    _refused(client.post("/v1/posts", json={"author": "bob", "lang": {"a": 1}}, headers=H), "lang")
    _refused(client.post("/v1/posts", json={"author": "bob", "lang": "x" * 17}, headers=H), "lang")


def test_state_and_server_load_any_community_the_store_holds(tmp_path):
    """Rows the edge now refuses, written straight through the store: the state rebuilds with -1 (unknown)."""
    path = tmp_path / "legacy.db"
    store = open_store(path)
    rows = [
        ("big", "big", 0.0, 2**31, "", None),
        ("huge", "huge", 0.0, 2**62, "", None),
        ("neg", "neg", 0.0, -(2**40), "", None),
        ("text", "text", 0.0, "abc", "", None),
        ("fine", "fine", 0.0, 7, "", None),
    ]
    with store.transaction() as tx:
        idx = store.insert_users(tx, rows)
    state = ServingState.from_store(store, packaged_settings().state)
    assert state.users.community(np.array(idx)).tolist() == [-1, -1, -1, -1, 7]
    store.close()
    with TestClient(_app(path)) as c:  # the server starts on that database and serves those users
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/users/big/feed", headers=H).status_code == 200


def test_community_column_maps_out_of_range_to_unknown():
    got = community_column(np.array([3, 2**31, -(2**31) - 1, -1], np.int64))
    assert got.dtype == np.int32 and got.tolist() == [3, -1, -1, -1]
    assert community_column([None, 5, 2**80, "x"]).tolist() == [-1, 5, -1, -1]


# ---------------------------------------------------------------------------------------------- ids
def test_the_id_rule():
    assert not any(map(has_unsafe_chars, ["u1", "José", "用户", "did:plc:abc", 'x"; filename="evil.exe']))
    assert all(map(has_unsafe_chars, BAD_IDS))


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_and_handles_with_invisible_characters_are_refused(client, bad):
    store = client.app.state.store
    _refused(client.post("/v1/users", json={"id": bad}, headers=H), "id")
    _refused(client.post("/v1/users", json={"id": "dave", "handle": bad}, headers=H), "handle")
    _refused(client.post("/v1/posts", json={"id": bad, "author": "bob"}, headers=H), "id")
    ev = {"kind": "like", "user": "bob", "post": "p1", "id": bad}
    _refused(client.post("/v1/events", json=[ev], headers=H), "id")
    assert store.user_idx(bad) is None and store.user_idx("dave") is None and store.post_idx(bad) is None
    assert store.count("events") == 0


def test_resolved_batches_follow_the_same_id_rule(tmp_path):
    ing = Ingestor(open_store(tmp_path / "b.db"))
    ing.create_users([{"id": "a"}])
    ing.create_posts([{"id": "p", "author": "a"}])
    batch = EventBatch.from_columns(
        kind=np.full(2, int(EventKind.LIKE), np.int8),
        user=np.array([1, 1]),
        post=np.array([1, 1]),
        ts=np.array([1.0, 2.0]),
        id=["ok-1", "bad\u200b"],
    )
    with pytest.raises(IngestError) as e:
        ing.ingest_batch(batch)
    assert [(x.index, x.field) for x in e.value.errors] == [(1, "id")]
    assert ing.store.count("events") == 0


def test_non_latin1_ids_are_accepted(client):
    r = client.post("/v1/users", json=[{"id": "José"}, {"id": "用户"}], headers=H)
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------------------------- list sizes
def test_every_list_field_is_bounded(client):
    n = LIMITS.max_list_items + 1
    many = [f"t{i}" for i in range(n)]
    _refused(client.post("/v1/users", json={"id": "carol", "interests": many}, headers=H), "interests")
    long = ["x" * (LIMITS.max_topic_chars + 1)]
    _refused(client.post("/v1/users", json={"id": "carol", "interests": long}, headers=H), "interests")
    _refused(client.post("/v1/posts", json={"author": "bob", "topics": many}, headers=H), "topics")
    _refused(client.post("/v1/posts", json={"author": "bob", "labels": many}, headers=H), "labels")
    assert client.app.state.store.count("users") == 2 and client.app.state.store.count("posts") == 1
    at_limit = many[:-1]
    assert client.post("/v1/users", json={"id": "carol", "interests": at_limit}, headers=H).status_code == 201


def test_preference_and_muted_word_lists_are_bounded(client):
    n = LIMITS.max_list_items + 1
    for key in ("topics_more", "topics_less"):
        r = client.put("/v1/users/alice/prefs", json={key: [f"t{i}" for i in range(n)]}, headers=H)
        _refused(r, key, index=-1)
    ok = client.put("/v1/users/alice/prefs", json={"topics_more": [f"t{i}" for i in range(n - 1)]}, headers=H)
    assert ok.status_code == 200, ok.text
    words = [f"w{i}" for i in range(LIMITS.max_muted_words + 1)]
    _refused(client.put("/v1/users/alice/muted-words", json={"words": words}, headers=H), "words", index=-1)
    long = ["w" * (LIMITS.max_muted_word_chars + 1)]
    _refused(client.put("/v1/users/alice/muted-words", json={"words": long}, headers=H), "words", index=-1)
    assert client.get("/v1/users/alice/muted-words", headers=H).json()["words"] == []


# ---------------------------------------------------------------------------------------------- cursors
def _user_with_cursor(svc):
    for u in range(1, svc.state.n_users + 1):
        uid = svc.state.users.id_of(u)
        page = svc.feed(uid, limit=3, log_impressions=False)
        if page["cursor"]:
            return u, uid, page
    raise AssertionError("no user with a second page")


def test_cursor_naming_an_unknown_user_or_malformed_is_400(trained_feed):
    svc, _ = trained_feed
    u, uid, page = _user_with_cursor(svc)
    fields = {"u": u, "s": "abc", "p": 1, "t": svc.now(), "pol": "engagement", "w": time.time()}
    for bad in ({"u": svc.state.users.n + 5}, {"u": -3}, {"u": "1"}):
        with pytest.raises(FeedError, match="unknown user") as e:
            svc.feed(uid, cursor=svc._encode_cursor({**fields, **bad}), log_impressions=False)
        assert e.value.status == 400
    for bad in ({"p": "x"}, {"s": ["a"]}, {"t": None}, {"pol": 3}, {"p": 0}):
        with pytest.raises(FeedError, match="invalid") as e:
            svc.feed(uid, cursor=svc._encode_cursor({**fields, **bad}), log_impressions=False)
        assert e.value.status == 400
    without_issue_time = {k: v for k, v in fields.items() if k != "w"}
    with pytest.raises(FeedError, match="invalid"):
        svc.feed(uid, cursor=svc._encode_cursor(without_issue_time), log_impressions=False)
    assert svc.feed(uid, cursor=page["cursor"], limit=3, log_impressions=False)["items"]


def test_cursors_expire(trained_feed):
    svc, _ = trained_feed
    u, uid, _ = _user_with_cursor(svc)
    ttl = svc.settings.serving.cursor_ttl_s
    assert ttl == packaged_settings().serving.cursor_ttl_s
    fields = {"u": u, "s": "sess", "p": 1, "t": svc.now(), "pol": "engagement"}
    with pytest.raises(FeedError, match="cursor expired; start again without one") as e:
        svc.feed(uid, cursor=svc._encode_cursor({**fields, "w": time.time() - ttl - 1}), log_impressions=False)
    assert e.value.status == 400
    fresh = svc._encode_cursor({**fields, "w": time.time() - ttl + 60})
    assert svc.feed(uid, cursor=fresh, limit=3, log_impressions=False)["user"] == uid


def test_bad_cursor_over_http_is_400(client):
    r = client.get("/v1/feed", params={"cursor": "e30.AAAA"})
    _refused(r, "cursor", status=400, index=-1)


# ---------------------------------------------------------------------------------------------- downloads
def _filename_star(header: str) -> str:
    star = [p.strip() for p in header.split(";") if p.strip().startswith("filename*=")]
    assert len(star) == 1, header
    return unquote(star[0].removeprefix("filename*=UTF-8''"))


@pytest.mark.parametrize("uid", ["José", "用户", 'x"; filename="evil.exe'])
def test_export_names_any_id_safely(client, uid):
    assert client.post("/v1/users", json={"id": uid}, headers=H).status_code == 201
    r = client.get(f"/v1/users/{uid}/data", headers=H)
    assert r.status_code == 200, r.text
    header = r.headers["content-disposition"]
    assert header.isascii() and header.count("filename=") == 1 and header.count('"') == 2
    assert _filename_star(header) == f"glassfeed-{uid}.json"


def test_export_of_a_stored_id_with_control_characters_keeps_the_connection(client):
    store = client.app.state.store
    with store.transaction() as tx:  # a row from before ids were checked
        store.insert_users(tx, [("a\r\nb\x00", "h", 0.0, None, "", None)])
    client.app.state.feed.reload()
    r = client.get("/v1/users/a%0D%0Ab%00/data", headers=H)
    assert r.status_code == 200, r.text
    assert _filename_star(r.headers["content-disposition"]) == "glassfeed-a\r\nb\x00.json"


def test_attachment_header():
    assert attachment("glassfeed-alice.json") == (
        "attachment; filename=\"glassfeed-alice.json\"; filename*=UTF-8''glassfeed-alice.json"
    )
