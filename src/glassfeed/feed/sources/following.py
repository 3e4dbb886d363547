"""In-network source: recent posts and reposts from the accounts each user follows (newest first)."""

from __future__ import annotations

from bisect import bisect_left
from itertools import chain

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates, expand_pairs, top_k_per_row
from glassfeed.state import ServingState


def following(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float,
              **_: object) -> Candidates:
    """Up to ``k`` newest posts per user by followed authors (score = recency), plus the ``k // 5`` newest
    reposts by followed accounts (``via`` = the reposter). Batch-wide: each followed account's window is
    looked up once, then expanded to every (user, account) pair with numpy."""
    follows = [state.following[u] for u in users.tolist()]
    sizes = np.fromiter(map(len, follows), np.int64, len(follows))
    if not sizes.any():
        return Candidates.empty()
    row = np.repeat(np.arange(len(users), dtype=np.int64), sizes)
    followee = np.fromiter(chain.from_iterable(follows), np.int64, int(sizes.sum()))
    actors, actor_of = np.unique(followee, return_inverse=True)
    created = state.created.a
    posts, n_posts, reposts, repost_t, n_reposts = _windows(state, actors, now, cutoff)
    parts = []
    for flat, n_act, t_flat, cap in ((posts, n_posts, None, k), (reposts, n_reposts, repost_t, max(k // 5, 1))):
        r, at, via = expand_pairs(row, followee, actor_of, n_act)
        if not len(at):
            continue
        p = flat[at]
        top = top_k_per_row(r, created[p] if t_flat is None else t_flat[at], cap)
        r, p, via = r[top], p[top], via[top] if t_flat is not None else np.zeros(len(top), np.int64)
        parts.append(Candidates(r, p, np.full(len(p), SOURCE_CODE["following"], np.int64),
                                1.0 / (1.0 + (now - created[p]) / 3600.0), via))
    return Candidates.concat(parts)


def _windows(state: ServingState, actors: np.ndarray, now: float, cutoff: float):
    """Each account's own posts created in [cutoff, now] and its reposts (with repost time) since ``cutoff``."""
    created = state.created.a
    key = created.__getitem__
    own: list[list[int]] = []
    rep: list[np.ndarray] = []
    rep_t: list[np.ndarray] = []
    n_own = np.zeros(len(actors), np.int64)
    n_rep = np.zeros(len(actors), np.int64)
    for i, a in enumerate(actors.tolist()):
        lst = state.author_posts.get(a)
        if lst:
            got = lst[bisect_left(lst, cutoff, key=key):]
            own.append(got)
            n_own[i] = len(got)
        p, t = state.recent_actions(1, a)
        if len(p):
            ok = (t >= cutoff) & (created[p] <= now)
            rep.append(p[ok])
            rep_t.append(t[ok])
            n_rep[i] = int(ok.sum())
    posts = np.fromiter(chain.from_iterable(own), np.int64, int(n_own.sum()))
    fresh = created[posts] <= now  # drop posts from the future (data clock), keeping per-account counts right
    if not fresh.all():
        n_own = np.bincount(np.repeat(np.arange(len(actors)), n_own)[fresh], minlength=len(actors))
        posts = posts[fresh]
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    return posts, n_own, cat(rep, np.int64), cat(rep_t, np.float64), n_rep

