"""Social-proof source: posts liked or reposted recently by accounts the user follows (like X's UTEG/GraphJet)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from glassfeed.feed.candidates import Candidates
from glassfeed.state import ServingState


def social_proof(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float,
                 **_: object) -> Candidates:
    """Score = number of followed accounts who engaged (reposts count double); ``via`` = the first of them."""
    rows: list[int] = []
    posts: list[int] = []
    scores: list[float] = []
    via: list[int] = []
    for r, u in enumerate(users.tolist()):
        count: Counter[int] = Counter()
        first: dict[int, int] = {}
        for f in state.following[u]:
            for bank, w in ((state.recent_likes.get(f), 1.0), (state.recent_reposts.get(f), 2.0)):
                if not bank:
                    continue
                for p, t in bank:
                    if t >= cutoff:
                        count[p] += w
                        first.setdefault(p, f)
        if not count:
            continue
        for p, c in count.most_common(k):
            rows.append(r)
            posts.append(p)
            scores.append(c)
            via.append(first[p])
    return Candidates.build(rows, posts, "social_proof", scores, via)


def engagers_followed(state: ServingState, user: int, post: int, limit: int = 3) -> list[int]:
    """Followed accounts who liked or reposted ``post`` (for the explanation's 'liked by A and B')."""
    out = []
    for f in state.following[user]:
        if any(p == post for p, _ in state.recent_likes.get(f, ())) or \
                any(p == post for p, _ in state.recent_reposts.get(f, ())):
            out.append(f)
            if len(out) >= limit:
                break
    return out
