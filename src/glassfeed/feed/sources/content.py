"""Content source: recent posts whose text is nearest to what each person engages with (no engagement needed).

A person's content vector (``glassfeed.content``: the decayed embeddings of posts they engaged with, plus their
onboarding topics) is matched against the embeddings of the freshness window's posts, which were computed when the
posts arrived. The search runs on the embeddings' ``search_dims`` leading dimensions (the model's trained
truncation: a quarter of the work at 64 of 256) in ``ContentIndex``: an ``ANNIndex`` over the window's newest
``search_max_posts`` posts at the last rebuild (exact below ``exact_below`` posts, HNSW above), plus the posts added
since, searched exactly, so a new post is retrievable from the moment it is ingested; the cost of a request is
bounded by ``search_max_posts`` whatever the network's size. The source score is the full-dimension cosine.
"""

from __future__ import annotations

import numpy as np

from glassfeed.content import user_vectors
from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.retrieval.ann import ANNIndex
from glassfeed.state import ServingState


class ContentIndex:
    """The window's post embeddings, searchable by content vector (see the module doc). ``refresh`` rebuilds the
    index when ``[state.content] rebuild_every_s`` has passed and posts were added, and otherwise only gathers the
    posts added since the build (the tail). Learned by ``refresh``: ``index_`` (``None``: nothing to search),
    ``built_at_``, ``built_upto_`` (the highest post idx when built), ``tail_``/``tail_vec_``."""

    def __init__(self) -> None:
        self.index_: ANNIndex | None = None
        self.built_at_ = -np.inf
        self.built_upto_ = 0
        self.built_n_posts_ = -1
        self.tail_ = np.zeros(0, np.int64)
        self.tail_vec_ = np.zeros((0, 0), np.float32)

    def refresh(self, state: ServingState, recent: np.ndarray, now: float) -> None:
        cfg = state.config.content
        if not state.content.enabled:
            self.index_, self.tail_ = None, np.zeros(0, np.int64)
            return
        stale = now - self.built_at_ >= cfg.rebuild_every_s and state.n_posts != self.built_n_posts_
        if self.built_n_posts_ < 0 or stale:
            pool = recent[state.content.has(recent)]
            if cfg.search_max_posts:
                pool = pool[-cfg.search_max_posts :]  # the newest (post idx grow with arrival)
            vec = state.content.embeddings(pool, cfg.search_dims)
            ann = ANNIndex(cfg.search_dims, exact_below=cfg.exact_below)
            self.index_ = ann.fit(vec, pool) if len(pool) else None
            self.built_at_, self.built_n_posts_ = now, state.n_posts
            self.built_upto_ = int(recent.max()) if len(recent) else 0
            self.tail_ = np.zeros(0, np.int64)
        tail = recent[recent > self.built_upto_]
        tail = tail[state.content.has(tail)]
        if len(tail) != len(self.tail_) or (len(tail) and tail[-1] != self.tail_[-1]):
            self.tail_, self.tail_vec_ = tail, state.content.embeddings(tail, cfg.search_dims)

    def query(self, state: ServingState, uvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` post idx per query row by search-dimension cosine (-1 where fewer), index and tail merged."""
        q = uvec[:, : state.config.content.search_dims]
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        parts = []
        if self.index_ is not None:
            parts.append(self.index_.query(q, k))
        if len(self.tail_):
            s = q @ self.tail_vec_.T
            parts.append((np.broadcast_to(self.tail_, s.shape), s))
        if not parts:
            return np.full((len(q), k), -1, np.int64), np.full((len(q), k), -np.inf, np.float32)
        ids = np.concatenate([p[0] for p in parts], axis=1)
        sc = np.concatenate([p[1] for p in parts], axis=1).astype(np.float32)
        if ids.shape[1] > k:
            top = np.argpartition(-sc, k - 1, axis=1)[:, :k]
            ids, sc = np.take_along_axis(ids, top, axis=1), np.take_along_axis(sc, top, axis=1)
        return ids, sc


def content(
    state: ServingState,
    users: np.ndarray,
    now: float,
    k: int,
    cutoff: float,
    recent: np.ndarray | None = None,
    content_index: ContentIndex | None = None,
    **_: object,
) -> Candidates:
    """Up to ``k`` posts of the freshness window per person, nearest to their content vector (people without one
    get none); score = cosine of the full embeddings. Batch-first: one content vector per person, one search for
    the whole batch."""
    if content_index is None or not state.content.enabled or not len(users):
        return Candidates.empty()
    pool = recent if recent is not None else state.posts.created_between(cutoff, now)
    content_index.refresh(state, pool, now)
    uvec = user_vectors(state, users, now)
    ok = np.flatnonzero(np.abs(uvec).sum(axis=1) > 0)
    if not len(ok):
        return Candidates.empty()
    ids = content_index.query(state, uvec[ok], k)[0]
    rows = np.repeat(ok, ids.shape[1])
    post = ids.ravel()
    keep = post >= 0
    rows, post = rows[keep], post[keep]
    created = state.posts.created(post)
    fresh = (created >= cutoff) & (created <= now)  # the index may hold posts that aged out since it was built
    rows, post = rows[fresh], post[fresh]
    score = np.einsum("ij,ij->i", uvec[rows], state.content.embeddings(post)).astype(np.float64)
    n = len(post)
    return Candidates(rows, post, np.full(n, SOURCE_CODE["content"], np.int64), score, np.zeros(n, np.int64))
