"""In-network source: recent posts and reposts from the accounts each user follows (newest first)."""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from glassfeed.feed.candidates import Candidates
from glassfeed.state import ServingState


def following(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float,
              **_: object) -> Candidates:
    """Up to ``k`` newest posts per user by followed authors (score = recency), plus their reposts."""
    rows: list[int] = []
    posts: list[int] = []
    scores: list[float] = []
    via: list[int] = []
    created = state.created.a
    key = created.__getitem__
    for r, u in enumerate(users.tolist()):
        got: list[int] = []
        rep: list[tuple[int, int]] = []
        for a in state.following[u]:
            lst = state.author_posts.get(a)
            if lst:
                lo = bisect_left(lst, cutoff, key=key)
                got.extend(lst[lo:])
            for p, t in state.recent_reposts.get(a, ()):
                if t >= cutoff and created[p] <= now:
                    rep.append((p, a))
        if not got and not rep:
            continue
        cand = np.asarray(got, np.int64)
        cand = cand[created[cand] <= now]
        if len(cand) > k:
            cand = cand[np.argpartition(-created[cand], k - 1)[:k]]
        age_h = (now - created[cand]) / 3600.0
        rows.extend([r] * len(cand))
        posts.extend(cand.tolist())
        scores.extend((1.0 / (1.0 + age_h)).tolist())
        via.extend([0] * len(cand))
        for p, a in rep[-max(k // 5, 1):]:
            rows.append(r)
            posts.append(p)
            scores.append(1.0 / (1.0 + (now - created[p]) / 3600.0))
            via.append(a)
    return Candidates.build(rows, posts, "following", scores, via)
