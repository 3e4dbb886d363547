"""Cold-start source: for people with little history, popular recent posts in the topics they picked."""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.state import C, ServingState

COLD_EVENTS = 20  # users with fewer events than this are "cold"


def cold_start(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float,
               recent: np.ndarray | None = None, **_: object) -> Candidates:
    """Score = decayed likes + reposts of the post; restricted to the user's onboarding topics when given."""
    cold = np.flatnonzero(state.user_events.a[users] < COLD_EVENTS)
    if not len(cold):
        return Candidates.empty()
    from glassfeed.feed.sources.trending import recent_posts
    pool = recent if recent is not None else recent_posts(state, now, cutoff)
    if not len(pool):
        return Candidates.empty()
    cnt = state.decayed_counters(pool, now)
    pop = cnt[:, C["like"]] + 2 * cnt[:, C["repost"]]
    topics = state.topic.a[pool]
    rows: list[np.ndarray] = []
    posts: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for r in cold.tolist():
        interests = state.user_interests[int(users[r])]
        m = np.isin(topics, interests) if interests else np.ones(len(pool), bool)
        if not m.any():
            m = np.ones(len(pool), bool)
        cand, s = pool[m], pop[m]
        kk = min(k, len(cand))
        top = np.argpartition(-s, kk - 1)[:kk]
        rows.append(np.full(kk, r))
        posts.append(cand[top])
        scores.append(s[top])
    n = sum(len(p) for p in posts)
    return Candidates(np.concatenate(rows), np.concatenate(posts), np.full(n, SOURCE_CODE["cold_start"], np.int64),
                      np.concatenate(scores), np.zeros(n, np.int64))
