"""The request path's shortcuts return what the plain computation returns, bit for bit, on a small generated network
with trained models: each test runs the feed (or the changed function) both ways and compares.

- heads a policy weighs 0 are predicted for the page's rows only (``EngagementHeads.predict(skip=...)`` then
  ``complete``);
- a person's content vector is computed once per request and reused (``ContentVectors.user_vectors``' memo), and a
  write to the content state is never answered from the memo;
- the page's items are built from the page's columns read once (``FeedService._items``, ``top_contributions``,
  ``adjustment_list``, ``source_reason(author=...)``);
- ``features._nan_to`` is ``np.nan_to_num``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from glassfeed.content.vectors import ContentVectors
from glassfeed.domain import EventKind
from glassfeed.feed.explain import ADJUSTMENT_WORDS, adjustment_list, source_reason, top_contributions
from glassfeed.feed.features import _nan_to
from glassfeed.feed.heads import EngagementHeads
from glassfeed.feed.mixing import ADJUSTMENTS
from glassfeed.feed.pipeline import Pages, rank
from glassfeed.feed.policy import HEADS, SOURCES

POLICIES = ("engagement", "stated_preference", "bridging", "chronological")


def _users(svc: Any, n: int = 40) -> list[int]:
    st = svc.state
    active = [u for u in range(1, st.n_users + 1) if len(st.graph.following(u)) >= 3]
    return active[:: max(1, len(active) // n)][:n]


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The computation without the shortcuts: every head predicted for every row, no content-vector memo."""
    predict = EngagementHeads.predict
    user_vectors = ContentVectors.user_vectors

    def predict_all(self: EngagementHeads, X: np.ndarray, calibrated: bool = True, skip: Any = ()) -> np.ndarray:
        return predict(self, X, calibrated)

    def no_memo(self: ContentVectors, *args: Any, **kwargs: Any) -> np.ndarray:
        self._memo = None
        return user_vectors(self, *args, **kwargs)

    monkeypatch.setattr(EngagementHeads, "predict", predict_all)
    monkeypatch.setattr(ContentVectors, "user_vectors", no_memo)


def _assert_pages_equal(a: Pages, b: Pages) -> None:
    for f in dataclasses.fields(Pages):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, f.name
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), f.name
        else:
            assert x == y, f.name


def test_rank_equals_the_plain_computation(trained_feed, monkeypatch):
    svc, _ = trained_feed
    st, models, now = svc.state, svc.models, svc.now()
    assert models.heads.trained and st.content.enabled
    runs = [(u, name) for name in POLICIES for u in _users(svc, 15)]
    fast = [rank(st, models, np.array([u]), svc.policy_for(u, name), now, 30) for u, name in runs]
    batch = rank(st, models, np.array([u for u, _ in runs[:15]]), svc.policy_for(0, "engagement"), now, 30)
    with monkeypatch.context() as m:
        _plain(m)
        plain = [rank(st, models, np.array([u]), svc.policy_for(u, name), now, 30) for u, name in runs]
        plain_batch = rank(st, models, np.array([u for u, _ in runs[:15]]), svc.policy_for(0, "engagement"), now, 30)
    assert sum(len(p.post) for p in fast) > 300
    for a, b in zip(fast, plain, strict=True):
        _assert_pages_equal(a, b)
    _assert_pages_equal(batch, plain_batch)
    # the heads a policy weighs 0 (click in every profiled preset) are on the page all the same
    engaged = [p for p, (_, name) in zip(fast, runs, strict=True) if name == "engagement" and len(p.post)]
    for p in engaged:
        assert p.probs is not None and p.features is not None
        assert np.array_equal(p.probs, models.heads.predict(p.features))
        assert (p.probs[:, HEADS.index("click")] > 0).all()


def test_feed_pages_and_why_equal_the_plain_computation(trained_feed, monkeypatch):
    svc, _ = trained_feed

    def pages() -> list[dict[str, Any]]:
        out = []
        for name in POLICIES:
            for u in _users(svc, 8):
                page = svc.feed(svc.state.users.id_of(u), policy=name, limit=25, log_impressions=False)
                page.pop("request_id"), page.pop("cursor")
                if page["items"]:
                    page["why"] = svc.why(page["user"], page["items"][-1]["post"])
                out.append(page)
        return out

    fast = pages()
    with monkeypatch.context() as m:
        _plain(m)
        m.setattr(type(svc), "_items", _reference_items)
        plain = pages()
    assert sum(len(p["items"]) for p in fast) > 200
    assert fast == plain
    for a, b in zip(fast, plain, strict=True):  # == on floats and key order: compare the types too
        for x, y in zip(a["items"], b["items"], strict=True):
            assert list(x) == list(y) and [type(v) for v in x.values()] == [type(v) for v in y.values()]


def _reference_items(self: Any, user: int, pages: Pages, pol: Any, now: float, limit: int) -> list[dict[str, Any]]:
    """``FeedService._items`` as it was written before the page's columns were read once (the plain path)."""
    from glassfeed.feed.explore import explore_note, explored_items
    from glassfeed.feed.mixing import fill_note, filled_items

    st = self.state
    n = len(pages.post)
    if pages.probs is not None:
        w = np.asarray(pol.weight_vector())
        contrib = pages.probs * w
        top = np.argsort(-np.abs(contrib), axis=1)[:, :3]
        tops = [
            [
                {
                    "head": HEADS[h],
                    "probability": float(pages.probs[i, h]),
                    "weight": float(w[h]),
                    "contribution": float(contrib[i, h]),
                }
                for h in row
            ]
            for i, row in enumerate(top.tolist())
        ]
    else:
        base = pages.score - pages.deltas.sum(axis=1)
        tops = [
            [{"head": pages.ranker, "probability": None, "weight": 1.0, "contribution": float(b)}]
            for b in base.tolist()
        ]
    filled = np.flatnonzero(filled_items(pages.row, pages.in_network, limit, pol)).tolist()
    fill = {i: fill_note(bool(pages.in_network[i]), limit, pol) for i in filled}
    fill.update({i: explore_note(limit, pol) for i in np.flatnonzero(explored_items(pages.deltas)).tolist()})
    if user:
        self._remember(user, pages, pol, fill)
    views = self.post_views(pages.post)
    out = []
    for i in range(n):
        p, src, via = int(pages.post[i]), SOURCES[int(pages.source[i])], int(pages.via[i])
        adjustments = [
            {"name": ADJUSTMENTS[j], "delta": d, "reason": ADJUSTMENT_WORDS[ADJUSTMENTS[j]]}
            for j, d in enumerate(pages.deltas[i].tolist())
            if d
        ]
        out.append(
            {
                **views[i],
                "reason": source_reason(st, user, p, src, via, full=False, source_score=float(pages.source_score[i])),
                "source": src,
                "score": float(pages.score[i]),
                "interstitial": bool(pages.interstitial[i]),
                "top_contributions": tops[i],
                "adjustments": adjustments,
                "repost_by": st.users.id_of(via) if via and src == "following" else None,
                "placement": fill.get(i),
            }
        )
    return out


def test_top_contributions_and_adjustments_from_lists_equal_the_arrays():
    rng = np.random.default_rng(0)
    probs = rng.random((40, len(HEADS)))
    w = np.resize(np.array([0.5, 1.0, 13.5, 0.0, 11.0, -74.0, -369.0, 2.0]), len(HEADS))
    tops = top_contributions(probs, w)
    contrib = probs * w
    for i, row in enumerate(tops):
        assert [c["head"] for c in row] == [HEADS[h] for h in np.argsort(-np.abs(contrib[i]))[:3]]
        for c in row:
            h = HEADS.index(c["head"])
            assert (c["probability"], c["weight"], c["contribution"]) == (probs[i, h], w[h], contrib[i, h])
            assert all(type(v) is float for k, v in c.items() if k != "head")
    deltas = np.where(rng.random((20, len(ADJUSTMENTS))) < 0.3, rng.normal(size=(20, len(ADJUSTMENTS))), 0.0)
    for row in deltas:
        assert adjustment_list(row) == adjustment_list(row.tolist())
        assert [a["name"] for a in adjustment_list(row)] == [ADJUSTMENTS[j] for j in np.flatnonzero(row)]


def test_content_vector_memo_never_answers_after_a_write(trained_feed, tmp_path):
    from feed_support import clone_service

    svc = clone_service(trained_feed[0], tmp_path)
    try:
        st, cv, now = svc.state, svc.state.content, svc.now()
        u = _users(svc, 1)[0]
        users = np.array([u])
        first = st.content.user_vectors(users, now, [st.users.interests_of(u)])
        assert st.content.user_vectors(users, now, [st.users.interests_of(u)]) is first  # the memo
        assert not first.flags.writeable
        # other times, people or interests are not the memo's
        assert st.content.user_vectors(users, now + 3600.0, [st.users.interests_of(u)]) is not first
        assert st.content.user_vectors(users, now, [[]]) is not first
        again = st.content.user_vectors(users, now, [st.users.interests_of(u)])
        assert again is not first and np.array_equal(again, first)
        # a like on an embedded post changes the vector at once
        post = int(st.posts.created_between(now - 86400.0, now)[-1])
        assert cv.has(np.array([post]))[0]
        cv.apply(np.array([int(EventKind.LIKE)]), users, np.array([post]), np.array([now]))
        after = st.content.user_vectors(users, now, [st.users.interests_of(u)])
        cv._memo = None
        fresh = st.content.user_vectors(users, now, [st.users.interests_of(u)])
        assert np.array_equal(after, fresh) and not np.array_equal(after, first)
        cv.forget_user(u)
        erased = st.content.user_vectors(users, now, [[]])
        assert not erased.any()
    finally:
        svc.close()


def test_nan_to_equals_numpy():
    for x in (
        np.array([1.0, np.nan, -2.0]),
        np.array([np.inf, np.nan, -np.inf, 0.5]),
        np.array([np.nan, np.nan], np.float32),
        np.zeros(0),
    ):
        a, b = _nan_to(x, 7.5), np.nan_to_num(x, nan=7.5)
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_complete_fills_skipped_heads_as_predict_does(trained_feed):
    svc, _ = trained_feed
    heads = svc.models.heads
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, heads.boosters["like"].num_feature())).astype(np.float32)
    full = heads.predict(X)
    skip = ("click", "like")
    part = heads.predict(X, skip=skip)
    assert not part[:, [HEADS.index(h) for h in skip]].any()
    rows = np.array([3, 17, 40, 99])
    assert np.array_equal(heads.complete(part[rows], X[rows], skip), full[rows])
    assert heads.complete(part, X, ()) is part


def test_created_between_equals_a_scan_of_every_post():
    """The ordered-prefix search answers as the plain scan, through in-order and out-of-order arrivals, gaps in
    idx, a post stored again with another time, NaN, and the retention window's shift."""
    from glassfeed.state.posts import PostTable
    from glassfeed.state.topics import Topics

    rng = np.random.default_rng(5)
    posts = PostTable(Topics())

    def add(idx: np.ndarray, created: np.ndarray) -> None:
        n = len(idx)
        posts.add(
            {
                "idx": idx.astype(np.int64),
                "id": [f"p{i}" for i in idx.tolist()],
                "author": np.ones(n, np.int64),
                "created_at": created.astype(np.float64),
                "reply_to": np.zeros(n, np.int64),
                "text": ["x"] * n,
                "topics": [[] for _ in range(n)],
                "labels": [[] for _ in range(n)],
                "divisiveness": np.zeros(n),
            }
        )

    def plain(since: float, until: float) -> np.ndarray:
        lo = max(1, posts._base)
        created = posts._created.a[lo - posts._base : posts.n + 1 - posts._base]
        return np.flatnonzero((created >= since) & (created <= until)) + lo

    def check() -> None:
        for _ in range(20):
            since, until = np.sort(rng.uniform(-10.0, 1100.0, 2))
            got = posts.created_between(float(since), float(until))
            assert got.dtype == np.int64 and np.array_equal(got, plain(float(since), float(until)))
        t = posts._created.a[max(1, posts._base) - posts._base : posts.n + 1 - posts._base]
        for v in t[np.isfinite(t)][:5].tolist():  # bounds on stored times
            assert np.array_equal(posts.created_between(v, v), plain(v, v))

    check()  # empty
    add(np.arange(1, 301), np.sort(rng.uniform(0, 300, 300)))  # in order
    check()
    add(np.arange(301, 401), np.sort(rng.uniform(300, 400, 100)))  # in order, later
    check()
    add(np.arange(401, 451), rng.uniform(0, 500, 50))  # out of order
    check()
    add(np.array([470, 480]), np.array([600.0, 610.0]))  # a gap in idx (time 0 between)
    check()
    add(np.array([120]), np.array([1000.0]))  # an earlier post stored again, later in time
    check()
    add(np.array([481]), np.array([np.nan]))
    check()
    posts.shift_to(200.0)  # the retention window moves the base
    check()
    add(np.arange(482, 600), np.sort(rng.uniform(500, 1000, 118)))
    check()
