"""In-network source: recent posts and reposts from the accounts each user follows (newest first)."""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates, expand_pairs, top_k_per_row
from glassfeed.state import REPOSTS, ServingState


def following(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float, **_: object) -> Candidates:
    """Up to ``k`` newest posts per user by followed authors (score = recency), plus the ``k // 5`` newest
    reposts by followed accounts (``via`` = the reposter). Batch-wide: each followed account's window is
    looked up once, then expanded to every (user, account) pair with numpy."""
    row, followee = state.graph.follow_pairs(users)
    if not len(row):
        return Candidates.empty()
    actors, actor_of = np.unique(followee, return_inverse=True)
    posts, n_posts, reposts, repost_t, n_reposts = _windows(state, actors, now, cutoff)
    parts = []
    for flat, n_act, t_flat, cap in ((posts, n_posts, None, k), (reposts, n_reposts, repost_t, max(k // 5, 1))):
        r, at, via = expand_pairs(row, followee, actor_of, n_act)
        if not len(at):
            continue
        p = flat[at]
        top = top_k_per_row(r, state.posts.created(p) if t_flat is None else t_flat[at], cap)
        r, p, via = r[top], p[top], via[top] if t_flat is not None else np.zeros(len(top), np.int64)
        parts.append(
            Candidates(
                r,
                p,
                np.full(len(p), SOURCE_CODE["following"], np.int64),
                1.0 / (1.0 + (now - state.posts.created(p)) / 3600.0),
                via,
            )
        )
    return Candidates.concat(parts)


def _windows(
    state: ServingState, actors: np.ndarray, now: float, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each account's own posts created in [cutoff, now] and its reposts (with repost time) since ``cutoff``."""
    posts, n_own = state.posts.by_authors(actors, cutoff, now)
    reps = [state.counters.recent_actions(REPOSTS, a) for a in actors.tolist()]
    n_raw = np.fromiter((len(p) for p, _ in reps), np.int64, len(reps))
    if not n_raw.any():
        return posts, n_own, np.zeros(0, np.int64), np.zeros(0), np.zeros(len(actors), np.int64)
    rep, rep_t = np.concatenate([p for p, _ in reps]), np.concatenate([t for _, t in reps])
    ok = (rep_t >= cutoff) & (state.posts.created(rep) <= now)
    n_rep = np.bincount(np.repeat(np.arange(len(actors)), n_raw)[ok], minlength=len(actors))
    return posts, n_own, rep[ok], rep_t[ok], n_rep
