"""Trending source: posts with the highest time-decayed engagement velocity, optionally within a topic."""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.state import ServingState


def recent_posts(state: ServingState, now: float, cutoff: float) -> np.ndarray:
    """Indices of posts created in ``[cutoff, now]`` (the freshness window every source shares)."""
    return state.posts.created_between(cutoff, now)


def trending(
    state: ServingState,
    users: np.ndarray,
    now: float,
    k: int,
    cutoff: float,
    recent: np.ndarray | None = None,
    **_: object,
) -> Candidates:
    """The same global top-``k`` for every user in the batch (score = decayed velocity)."""
    pool = recent if recent is not None else recent_posts(state, now, cutoff)
    if not len(pool) or not len(users):
        return Candidates.empty()
    s = state.counters.trending(pool, now)
    kk = min(k, len(pool))
    top = np.argpartition(-s, kk - 1)[:kk]
    top = top[s[top] > 0]
    n = len(users)
    return Candidates(
        np.repeat(np.arange(n), len(top)),
        np.tile(pool[top], n),
        np.full(n * len(top), SOURCE_CODE["trending"], np.int64),
        np.tile(s[top], n),
        np.zeros(n * len(top), np.int64),
    )
