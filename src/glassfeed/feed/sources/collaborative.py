"""Out-of-network source: posts whose engagers resemble the user, via ALS factors and an HNSW index.

Users get ALS factors from training (``feed.train``). A post's vector is the fold-in of the users who liked it
(kept current by ``ServingState.apply_events``), normalised by the square root of its like count, so new posts
become retrievable as soon as people engage. The ANN index over recent posts is rebuilt when stale.
"""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.retrieval.ann import ANNIndex
from glassfeed.state import C, ServingState


class CollaborativeIndex:
    """HNSW index over recent posts' fold-in vectors; ``refresh`` rebuilds it when ``max_age_s`` has passed."""

    def __init__(self, rebuild_every_s: float = 300.0, M: int = 16, ef: int = 200) -> None:
        self.rebuild_every_s = rebuild_every_s
        self.M, self.ef = M, ef
        self.index: ANNIndex | None = None
        self.built_at = -np.inf
        self.built_n_posts = -1

    def refresh(self, state: ServingState, recent: np.ndarray, now: float, force: bool = False) -> None:
        if state.post_vec is None or state.user_vec is None:
            self.index = None
            return
        if not force and self.index is not None and now - self.built_at < self.rebuild_every_s \
                and state.n_posts == self.built_n_posts:
            return
        likes = state.totals.a[recent, C["like"]]
        pool = recent[likes > 0]
        vec = state.post_vec[pool] / np.sqrt(likes[likes > 0] + 1.0)[:, None]
        self.index = ANNIndex(vec.shape[1], M=self.M, ef=self.ef).fit(vec, pool) if len(pool) else None
        self.built_at = now
        self.built_n_posts = state.n_posts


def collaborative(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float,
                  index: CollaborativeIndex | None = None, **_: object) -> Candidates:
    """Top-``k`` posts by inner product between the user's factor and post vectors (users with factors only)."""
    if index is None or index.index is None or state.user_vec is None:
        return Candidates.empty()
    ok = np.flatnonzero(users < len(state.user_vec))
    if not len(ok):
        return Candidates.empty()
    uvec = state.user_vec[users[ok]]
    has = np.abs(uvec).sum(axis=1) > 0
    ok, uvec = ok[has], uvec[has]
    if not len(ok):
        return Candidates.empty()
    ids, scores = index.index.query(uvec, k)
    keep = ids > 0
    rows = np.repeat(ok, ids.shape[1])[keep.ravel()]
    n = int(keep.sum())
    return Candidates(rows, ids[keep], np.full(n, SOURCE_CODE["collaborative"], np.int64),
                      scores[keep].astype(np.float64), np.zeros(n, np.int64))
