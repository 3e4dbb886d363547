"""Data-rights erasure is complete: the store, the serving state, the caches and the model files hold nothing the
person gave or that was derived from them alone, the export shows nothing inferred, and what stays is listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.service import ERASURE_KEPT, FeedService
from glassfeed.feed.train import erase_user_rows
from glassfeed.settings import load_settings
from glassfeed.state import LIKES, REPOSTS
from glassfeed.store import ERASED_LABEL, SQLiteStore, open_store

KEY = "erasure-test-key"


def _person(svc: FeedService) -> tuple[str, int]:
    """A user the trained models know (ALS factor and bridging side), who authored posts and follows someone."""
    st = svc.state
    uv = np.load(svc.models_folder / "als_user_factors.npy")
    side = np.load(svc.models_folder / "bridging_sides.npy")
    for u in range(1, st.n_users + 1):
        known = uv[u].any() and side[u] != 0 and st.posts.posts_of(u) and st.graph.following(u)
        if known and st.counters.recent_actions(LIKES, u)[0].size and st.feedback.top_affinities(u, svc.now()):
            return str(st.users.id_of(u)), u
    raise AssertionError("no suitable user in the trained network")


def _others_events_on(store, posts: list[int], not_user: int) -> int:
    return sum(int(((np.isin(b.post, posts)) & (b.user != not_user)).sum()) for b in store.iter_events())


def test_erasure_is_complete_in_store_state_caches_and_model_files(fresh_feed):
    svc, _ = fresh_feed
    uid, u = _person(svc)
    st, store = svc.state, svc.store
    blocked = next(v for v in range(1, st.n_users + 1) if v != u and v not in st.graph.following(u))
    svc.ingestor.ingest_batch(
        EventBatch.from_columns(
            kind=np.array([int(EventKind.BLOCK), int(EventKind.SEE_LESS)], np.int8),
            user=np.array([u, u]),
            post=np.array([-1, -1]),
            target_user=np.array([blocked, blocked]),
            ts=np.array([svc.now(), svc.now()]),
        )
    )
    svc.ingestor.set_muted_words(uid, ["zebra"])
    svc.save_prefs(uid, policy="chronological", topics_more=["golf"])
    page = svc.feed(uid, limit=10)  # fills the explanation cache and a paging session
    svc.flush_impressions()
    sid = page["request_id"].split(":")[1].split(".")[0]
    assert svc.explanations.get(u) and svc.sessions.served(sid)
    before = svc.user_data(uid)
    assert before["bridging_side"] != 0 and before["has_collaborative_profile"] and before["inferred_interests"]
    assert blocked in st.graph.blocked(u) and u in st.graph.hidden(blocked)
    own_posts = st.posts.posts_of(u)
    others_on_own = _others_events_on(store, own_posts, u)
    followed = sorted(st.graph.following(u))
    followers_before = st.graph.follower_count(np.array(followed))
    token = store.token_hash(u)
    seq = store.max_seq()
    uv_before = np.load(svc.models_folder / "als_user_factors.npy")
    side_before = np.load(svc.models_folder / "bridging_sides.npy")

    out = svc.delete_user_data(uid, posts=True)

    deleted = out["deleted"]
    assert deleted["events"] > 0 and deleted["blocks"] == 1 and deleted["muted_words"] == 1 and deleted["prefs"] == 1
    assert deleted["profile"] == 1 and deleted["posts"] == len(own_posts) and deleted["model_rows"] == 2
    assert out["kept"][: len(ERASURE_KEPT)] == list(ERASURE_KEPT) and "tombstones" in out["kept"][-1]

    # the store, through its named reads
    assert store.user_events(u, 10_000) == [] and store.max_seq() == seq  # the high-water mark stays
    for edge in ("follows", "blocks", "mutes"):
        assert u not in store.load_edges(edge)[0].tolist()
    assert u not in store.load_muted_words() and u not in store.load_prefs()
    users = store.load_users()
    i = users["idx"].tolist().index(u)
    assert (users["id"][i], users["handle"][i], users["interests"][i], users["community"][i]) == (uid, uid, [], -1)
    assert store.token_hash(u) == token  # the account stays usable
    posts = store.load_posts()
    mine = np.flatnonzero(posts["author"] == u)
    assert sorted(posts["idx"][mine].tolist()) == sorted(own_posts)
    assert all(posts["text"][j] == "" and posts["topics"][j] == [] for j in mine)
    assert all(posts["labels"][j] == [ERASED_LABEL] for j in mine)
    assert _others_events_on(store, own_posts, u) == others_on_own  # other people's events stay

    # the serving state
    one = np.array([u])
    assert st.users.handle_of(u) == uid and st.users.interests_of(u) == [] and st.users.community(one)[0] == -1
    assert st.counters.side(one)[0] == 0 and len(st.counters.user_vectors(one)[0]) == 0
    assert not st.counters.topic_profile(u).any() and st.counters.events(one)[0] == 0
    assert st.counters.topic_engagements(one)[0] == 0
    assert all(len(st.counters.recent_actions(b, u)[0]) == 0 for b in (LIKES, REPOSTS))
    fb = st.feedback
    assert fb.top_affinities(u, svc.now()) == [] and fb.see_less_authors(u) == [] and len(fb.seen(u)) == 0
    assert fb.muted_words(u) == [] and dict(fb.prefs(u)) == {}
    assert not st.graph.following(u) and not st.graph.blocked(u) and not st.graph.muted(u)
    assert u not in st.graph.hidden(blocked)  # the block is gone from the blocked person's side too
    assert (st.graph.follower_count(np.array(followed)) == followers_before - 1).all()
    assert st.posts.removed(np.array(own_posts)).all()
    assert all(st.posts.text_of(p) == "" and st.posts.topics_of(p) == [] for p in own_posts)

    # caches
    assert u not in svc.explanations and not svc.sessions.served(sid)

    # the model files: the person's rows zeroed, everyone else's untouched
    uv = np.load(svc.models_folder / "als_user_factors.npy")
    side = np.load(svc.models_folder / "bridging_sides.npy")
    assert not uv[u].any() and side[u] == 0
    uv_before[u], side_before[u] = 0, 0
    assert np.array_equal(uv, uv_before) and np.array_equal(side, side_before)
    assert not list(svc.models_folder.glob("*.tmp"))

    # the export shows nothing derived
    after = svc.user_data(uid)
    assert after["bridging_side"] == 0 and after["has_collaborative_profile"] is False
    assert after["inferred_interests"] == [] and after["author_affinity"] == [] and after["onboarding_interests"] == []
    assert after["handle"] == uid and after["events"] == [] and after["following"] == [] and after["blocked"] == []
    assert after["muted_words"] == [] and after["preferences"] == {} and after["see_less_authors"] == []
    assert after["counts"] == {"events": 0, "seen_posts": 0}

    # a state rebuilt from the store and the model files agrees with the live one about the person
    svc.reload()
    assert svc.user_data(uid) == after

    # the erased posts never reach anyone's feed
    gone = {store.load_posts()["id"][j] for j in mine}
    for viewer in [svc.state.users.id_of(v) for v in range(1, 40) if v != u]:
        for pol in ("engagement", "chronological"):
            items = svc.feed(viewer, policy=pol, limit=100, log_impressions=False)["items"]
            assert not gone & {it["post"] for it in items}


def test_without_posts_the_posts_stay_and_the_answer_says_so(fresh_feed):
    svc, _ = fresh_feed
    uid, u = _person(svc)
    texts = [svc.state.posts.text_of(p) for p in svc.state.posts.posts_of(u)]
    out = svc.delete_user_data(uid)
    assert out["deleted"]["posts"] == 0 and any("posts=true" in k for k in out["kept"])
    assert [svc.state.posts.text_of(p) for p in svc.state.posts.posts_of(u)] == texts
    assert not svc.state.posts.removed(np.array(svc.state.posts.posts_of(u))).any()
    stored = svc.store.load_posts()
    assert [t for a, t in zip(stored["author"].tolist(), stored["text"]) if a == u] == texts
    assert svc.delete_user_data(uid)["deleted"]["model_rows"] == 0  # already zeroed: nothing to rewrite


def test_erase_user_rows_rewrites_atomically_and_skips_missing_files(tmp_path: Path):
    assert erase_user_rows(tmp_path, 3) == []  # no models trained
    np.save(tmp_path / "bridging_sides.npy", np.array([0, 0.4, -0.2, 0.7], np.float32))
    assert erase_user_rows(tmp_path, 2) == ["bridging_sides.npy"]
    assert np.load(tmp_path / "bridging_sides.npy").tolist() == pytest.approx([0, 0.4, 0, 0.7])
    assert erase_user_rows(tmp_path, 9) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["bridging_sides.npy"]


def test_sqlite_overwrites_erased_values_in_the_file(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.db")
    with store.transaction() as tx:
        (a,) = store.insert_users(tx, [("a", "handle-QUOKKA", 1.0, None, "interest-WOMBAT", None)])
        store.insert_posts(tx, [("p", a, "text-PLATYPUS " * 20, 1.0, None, None, None, "", "en", "", None, None)])
        store.set_muted_words(tx, a, ["word-NUMBAT"])
    with store.transaction() as tx:
        store.delete_user_data(tx, a)
        store.erase_posts(tx, a)
    store.close()  # the last connection checkpoints the write-ahead log into the file
    data = (tmp_path / "s.db").read_bytes()
    for secret in (b"QUOKKA", b"WOMBAT", b"PLATYPUS", b"NUMBAT"):
        assert secret not in data


def test_delete_route_posts_option_and_kept_list(trained_feed, tmp_path: Path):
    svc = trained_feed[0]
    db = tmp_path / "api.db"
    svc.store.backup(db)
    shutil.copytree(svc.models_folder, tmp_path / "api.db.models")
    (tmp_path / "gf.toml").write_text('[serving]\nclock = "data"\n')
    uid, u = _person(svc)
    app = create_app(load_settings(tmp_path / "gf.toml", store={"path": db}, api={"key": KEY}))
    h = {"Authorization": f"Bearer {KEY}"}
    with TestClient(app) as client:
        assert client.get(f"/v1/users/{uid}/data", headers=h).json()["has_collaborative_profile"] is True
        bad = client.delete(f"/v1/users/{uid}/data?posts=maybe", headers=h)
        assert bad.status_code == 422 and "posts" in bad.text
        r = client.delete(f"/v1/users/{uid}/data?posts=true", headers=h)
        assert r.status_code == 200
        body = r.json()
        assert body["deleted"]["posts"] > 0 and body["deleted"]["model_rows"] == 2 and len(body["kept"]) >= 5
        data = client.get(f"/v1/users/{uid}/data", headers=h).json()
        assert data["bridging_side"] == 0 and data["has_collaborative_profile"] is False
        assert data["inferred_interests"] == [] and data["onboarding_interests"] == []
    reopened = open_store(db)
    try:
        posts = reopened.load_posts()
        own = posts["idx"][posts["author"] == u].tolist()
        assert own and set(map(tuple, reopened.post_labels(own).values())) == {(ERASED_LABEL,)}
    finally:
        reopened.close()
