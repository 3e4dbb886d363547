"""Out-of-network source: posts whose engagers resemble the user, via ALS factors and an HNSW index.

Users get ALS factors from training (``feed.train``). A post's vector is the fold-in of the users who liked it
(kept current by ``ServingState.apply_events``), normalised by the square root of its like count, so new posts
become retrievable as soon as people engage. The ANN index over recent posts is rebuilt when stale.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.retrieval.ann import ANNIndex
from glassfeed.state import LIKES, REPOSTS, C, ServingState


class CollaborativeIndex:
    """Index over recent posts' fold-in vectors; ``refresh`` rebuilds it when ``rebuild_every_s`` has passed or
    posts were added. Pools under ``exact_below`` posts are searched exactly, larger ones through HNSW."""

    def __init__(self, rebuild_every_s: float = 300.0, M: int = 16, ef: int = 200, exact_below: int = 0) -> None:
        self.rebuild_every_s = rebuild_every_s
        self.M, self.ef, self.exact_below = M, ef, exact_below
        self.index: ANNIndex | None = None
        self.built_at = -np.inf
        self.built_n_posts = -1

    def refresh(self, state: ServingState, recent: np.ndarray, now: float, force: bool = False) -> None:
        if not state.counters.has_factors:
            self.index = None
            return
        if (
            not force
            and self.index is not None
            and now - self.built_at < self.rebuild_every_s
            and state.n_posts == self.built_n_posts
        ):
            return
        likes = state.counters.totals(recent)[:, C["like"]]
        pool = recent[likes > 0]
        vec = state.counters.post_vectors(pool) / np.sqrt(likes[likes > 0] + 1.0)[:, None]
        ann = ANNIndex(vec.shape[1], M=self.M, ef=self.ef, exact_below=self.exact_below)
        self.index = ann.fit(vec, pool) if len(pool) else None
        self.built_at = now
        self.built_n_posts = state.n_posts

    def pair_scores(self, state: ServingState, users: np.ndarray, row: np.ndarray, posts: np.ndarray) -> np.ndarray:
        """The index's score of each pair (``users[row[i]]``, ``posts[i]``), for any post: the user's ALS factor
        times the post's fold-in vector over the square root of its like count + 1, as ``refresh`` indexes it;
        NaN for a user without a factor (0 for a post nobody liked). Reads the state, not the index, so it is
        current between rebuilds."""
        out = np.full(len(posts), np.nan)
        if not state.counters.has_factors or not len(posts):
            return out
        ok, uvec = state.counters.user_vectors(np.asarray(users, np.int64))
        slot = np.full(len(users), -1, np.int64)
        slot[ok] = np.arange(len(ok))
        has = slot[row] >= 0
        if not has.any():
            return out
        p = posts[has]
        likes = state.counters.totals(p)[:, C["like"]]
        pv = state.counters.post_vectors(p) / np.sqrt(likes + 1.0)[:, None]
        out[has] = np.einsum("ij,ij->i", uvec[slot[row[has]]], pv)
        return out


class EaseRetriever:
    """EASE item-item weights over the most engaged posts; a user's history is their recent likes and reposts
    in the serving state, so new engagement changes the candidates at once."""

    def __init__(self, items: np.ndarray, B: np.ndarray) -> None:
        self.items, self.B = items, B
        self.col_of = np.full(int(items.max()) + 1 if len(items) else 1, -1, np.int64)
        self.col_of[items] = np.arange(len(items))

    def history(self, state: ServingState, users: np.ndarray) -> sp.csr_matrix:
        """Binary users x modelled items matrix of each user's recent likes and reposts in the state."""
        rows, cols = [], []
        for r, u in enumerate(users.tolist()):
            hist = np.concatenate([state.counters.recent_actions(bank, u)[0] for bank in (LIKES, REPOSTS)])
            hist = self.col_of[hist[hist < len(self.col_of)]]
            hist = np.unique(hist[hist >= 0])
            rows.append(np.full(len(hist), r))
            cols.append(hist)
        r_ = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c_ = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(len(r_), np.float32), (r_, c_)), shape=(len(users), len(self.items)))

    def pair_scores(self, state: ServingState, users: np.ndarray, row: np.ndarray, posts: np.ndarray) -> np.ndarray:
        """EASE's score of each pair (``users[row[i]]``, ``posts[i]``) from the user's history in the state, as
        ``recommend`` ranks; NaN for a post outside the modelled items or a user with no modelled history."""
        out = np.full(len(posts), np.nan)
        posts = np.asarray(posts, np.int64)
        col = np.full(len(posts), -1, np.int64)
        inside = posts < len(self.col_of)
        col[inside] = self.col_of[posts[inside]]
        ok = col >= 0
        if not ok.any():
            return out
        X = self.history(state, np.asarray(users, np.int64))
        cols, at = np.unique(col[ok], return_inverse=True)
        S = np.asarray(X @ self.B[:, cols])
        scored = S[row[ok], at]
        scored[X.getnnz(axis=1)[row[ok]] == 0] = np.nan
        out[ok] = scored
        return out

    def recommend(self, state: ServingState, users: np.ndarray, k: int, cutoff: float, now: float) -> Candidates:
        X = self.history(state, users)
        if not X.nnz:
            return Candidates.empty()
        r_, c_ = X.nonzero()
        S = np.asarray(X @ self.B)
        created = state.posts.created(self.items)
        S[:, (created < cutoff) | (created > now)] = -np.inf
        S[r_, c_] = -np.inf  # never recommend what the user already engaged with
        kk = min(k, S.shape[1])
        top = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
        sc = np.take_along_axis(S, top, axis=1)
        ok = np.isfinite(sc) & (X.getnnz(axis=1) > 0)[:, None]
        n = int(ok.sum())
        return Candidates(
            np.repeat(np.arange(len(users)), kk)[ok.ravel()],
            self.items[top[ok]],
            np.full(n, SOURCE_CODE["collaborative"], np.int64),
            sc[ok].astype(np.float64),
            np.zeros(n, np.int64),
        )


def collaborative(
    state: ServingState,
    users: np.ndarray,
    now: float,
    k: int,
    cutoff: float,
    index: CollaborativeIndex | None = None,
    ease: EaseRetriever | None = None,
    **_: object,
) -> Candidates:
    """Top-``k`` posts for each user from EASE when trained with it, else by inner product between the user's
    ALS factor and post vectors in the HNSW index (users with factors only)."""
    if ease is not None:
        return ease.recommend(state, users, k, cutoff, now)
    if index is None or index.index is None or not state.counters.has_factors:
        return Candidates.empty()
    ok, uvec = state.counters.user_vectors(users)
    if not len(ok):
        return Candidates.empty()
    ids, scores = index.index.query(uvec, k)
    keep = ids >= 0
    rows = np.repeat(ok, ids.shape[1])[keep.ravel()]
    n = int(keep.sum())
    return Candidates(
        rows,
        ids[keep],
        np.full(n, SOURCE_CODE["collaborative"], np.int64),
        scores[keep].astype(np.float64),
        np.zeros(n, np.int64),
    )
