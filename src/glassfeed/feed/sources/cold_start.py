"""Cold-start source: for people with little history, popular recent posts in the topics they picked."""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.feed.sources.trending import recent_posts
from glassfeed.state import C, ServingState

COLD_EVENTS = 20  # users with fewer events than this are "cold"


def cold_start(
    state: ServingState,
    users: np.ndarray,
    now: float,
    k: int,
    cutoff: float,
    recent: np.ndarray | None = None,
    **_: object,
) -> Candidates:
    """Score = decayed likes + reposts of the post; restricted to the user's onboarding topics when given."""
    cold = np.flatnonzero(state.counters.events(users) < COLD_EVENTS)
    if not len(cold):
        return Candidates.empty()
    pool = recent if recent is not None else recent_posts(state, now, cutoff)
    if not len(pool):
        return Candidates.empty()
    cnt = state.counters.decayed(pool, now)
    pop = cnt[:, C["like"]] + 2 * cnt[:, C["repost"]]
    order = np.argsort(-pop, kind="stable")
    ranked, ranked_topic = pool[order], state.posts.topic(pool)[order]
    best = {int(t): ranked[ranked_topic == t][:k] for t in np.unique(ranked_topic).tolist()}  # top k per topic
    pos = np.empty(int(pool.max()) + 1, np.int64)
    pos[ranked] = np.arange(len(ranked))  # popularity rank of each pool post
    rows: list[np.ndarray] = []
    posts: list[np.ndarray] = []
    for r in cold.tolist():
        lists = [best[t] for t in state.users.interests_of(int(users[r])) if t in best]
        # the top k of the union of the user's topics lies within the union of each topic's top k
        cand = np.unique(pos[np.concatenate(lists)])[:k] if lists else np.arange(min(k, len(ranked)))
        rows.append(np.full(len(cand), r))
        posts.append(ranked[cand])
    post = np.concatenate(posts)
    n = len(post)
    return Candidates(
        np.concatenate(rows),
        post,
        np.full(n, SOURCE_CODE["cold_start"], np.int64),
        pop[order][pos[post]],
        np.zeros(n, np.int64),
    )
