"""Train/serve parity: the training replay and ``pipeline.rank`` compute the same feature row for the same
(user, post, time), including the pairs where "in-network" used to be defined two ways: a followed author's post
that arrives through another source, and a post by someone the user does not follow, reposted by an account the
user follows."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.candidates import SOURCE_CODE
from glassfeed.feed.features import FEATURES, F
from glassfeed.feed.pipeline import rank
from glassfeed.feed.policy import builtin_policies
from glassfeed.feed.train import Retrieval, build_examples, load_factors, load_models
from glassfeed.ingest import Ingestor
from glassfeed.state import ServingState
from glassfeed.store import open_store

CHUNK_S = 86400.0  # the replay's window (its default): the impressions under test open a window of their own


def _event(kind: EventKind, user: int, ts: float, post: int = -1) -> EventBatch:
    return EventBatch.from_columns(kind=[int(kind)], user=[user], ts=[ts], post=[post])


@pytest.fixture()
def world(trained_feed, tmp_path):
    """A copy of the trained feed's store whose last events set up the two in-network cases for one user."""
    svc, _ = trained_feed
    svc.store.backup(tmp_path / "feed.db")
    shutil.copytree(svc.models_folder, tmp_path / "models")
    store = open_store(tmp_path / "feed.db")
    now = svc.now()
    clock = {"now": now}
    ing = Ingestor(store, clock=lambda: clock["now"])
    st = ServingState.from_store(store)
    users = [u for u in range(1, st.n_users + 1) if len(st.graph.following(u)) >= 5]
    u = max(users, key=lambda x: len(st.graph.following(x)))
    follows = sorted(st.graph.following(u))
    recent = st.posts.created_between(now - 3 * 86400.0, now)
    seen = set(st.feedback.seen(u).tolist())
    fresh = [int(p) for p in recent[::-1] if int(p) not in seen]
    authors = st.posts.author(np.array(fresh)).tolist()
    # a post by a followed author, liked by another followed account (so social proof finds it)
    followed_post = next(p for p, a in zip(fresh, authors) if a in follows)
    liker = next(f for f in follows if f != st.posts.author_of(followed_post))
    # a post by an author u does not follow, reposted by a followed account
    reposter = follows[0]
    stranger_post = next(p for p, a in zip(fresh, authors) if a not in follows and a not in (u, reposter))
    ing.ingest_batch(
        EventBatch.concat(
            [
                _event(EventKind.LIKE, liker, now - 30.0, followed_post),
                _event(EventKind.REPOST, reposter, now - 20.0, stranger_post),
            ]
        )
    )
    t_start = float(store.events_in_window().ts.min())
    t = t_start + (math.floor((now - t_start) / CHUNK_S) + 1) * CHUNK_S + 1.0  # 1 s into a new replay window
    return store, ing, clock, tmp_path / "models", u, followed_post, stranger_post, reposter, t


def test_replay_and_rank_compute_identical_feature_rows(world):
    store, ing, clock, models_dir, u, followed_post, stranger_post, reposter, t = world
    user_vec, side = load_factors(models_dir)
    state = ServingState.from_store(store, user_vec=user_vec, side=side)
    models = load_models(models_dir)
    base = builtin_policies()["engagement"]
    everything = dataclasses.replace(
        base, mixing=base.mixing.replace(in_network_share=1.0, out_network_share=1.0, light_ranker_keep=100_000)
    )  # every candidate gets a row
    no_following = dataclasses.replace(everything, sources={k: v for k, v in base.sources.items() if k != "following"})
    pages = {
        name: rank(state, models, np.array([u]), pol, t, limit=100_000)
        for name, pol in (("all sources", everything), ("no following source", no_following))
    }
    for name, pg in pages.items():
        assert pg.ranker == "heads" and pg.features is not None and len(pg.post) > 50, name

    # the two cases are on the pages, and both are in-network whatever source brought them
    follows = state.graph.following(u)
    pg = pages["all sources"]
    i = np.flatnonzero(pg.post == stranger_post)
    assert len(i) == 1 and pg.source[i[0]] == SOURCE_CODE["following"] and pg.via[i[0]] == reposter
    assert state.posts.author_of(stranger_post) not in follows and pg.in_network[i[0]]
    pg = pages["no following source"]
    i = np.flatnonzero(pg.post == followed_post)
    assert len(i) == 1 and pg.source[i[0]] != SOURCE_CODE["following"]
    assert state.posts.author_of(followed_post) in follows and pg.in_network[i[0]]
    assert not pg.in_network.all() and pg.in_network.any()

    # log the served impressions at time t, at slot 0 (where serving asks), then replay the log as training does,
    # with the candidate sets of the policy that served every source
    posts = np.unique(np.concatenate([pg.post for pg in pages.values()]))
    clock["now"] = t
    ing.ingest_batch(
        EventBatch.from_columns(
            kind=np.full(len(posts), int(EventKind.IMPRESSION)),
            user=np.full(len(posts), u),
            post=posts,
            ts=np.full(len(posts), t),
            position=np.zeros(len(posts)),
        )
    )
    ex = build_examples(store, chunk_s=CHUNK_S, max_rows=10**9, retrieval=Retrieval(models, user_vec, everything))
    mine = np.flatnonzero((ex.user == u) & (ex.ts == t))
    assert sorted(ex.post[mine].tolist()) == posts.tolist()
    row_of = dict(zip(ex.post[mine].tolist(), mine.tolist()))
    # which sources found a pair depends on the policy's sources: the replay used those of "all sources"
    by_source = [j for j, name in enumerate(FEATURES) if name.startswith("src_") or name == "n_sources"]
    for name, pg in pages.items():
        X_train = ex.X[[row_of[p] for p in pg.post.tolist()]]
        differs = (X_train != pg.features).any(axis=0)
        # the content vectors decay from an origin that replay and serving move at different events: float32
        # rounding, not a different computation
        cs = F["content_sim"]
        differs[cs] = not np.allclose(X_train[:, cs], pg.features[:, cs], rtol=1e-5, atol=1e-6)
        if name != "all sources":
            differs[by_source] = False
        bad = np.flatnonzero(differs)
        assert not len(bad), (name, [list(F)[j] for j in bad])
        assert np.array_equal(X_train[:, F["in_network"]] == 1, pg.in_network), name
    X_all = ex.X[[row_of[p] for p in pages["all sources"].post.tolist()]]
    assert (X_all[:, F["n_sources"]] >= 1).all() and (X_all[:, F["src_collaborative"]] == 1).any()
    assert (X_all[:, F["collab_score"]] != 0).any() and (X_all[:, F["social_proof"]] > 0).any()
