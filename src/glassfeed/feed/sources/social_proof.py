"""Social-proof source: posts liked or reposted recently by accounts the user follows (like X's UTEG/GraphJet)."""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates
from glassfeed.state import ServingState


def social_proof(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float,
                 **_: object) -> Candidates:
    """Score = number of followed accounts who engaged (reposts count double); ``via`` = one of them."""
    rows: list[np.ndarray] = []
    posts: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    via: list[np.ndarray] = []
    for r, u in enumerate(users.tolist()):
        ps, ts, lens, ws, who = [], [], [], [], []
        for f in state.following[u]:
            for bank, w in ((0, 1.0), (1, 2.0)):
                p, t = state.recent_actions(bank, f)
                if len(p):
                    ps.append(p)
                    ts.append(t)
                    lens.append(len(p))
                    ws.append(w)
                    who.append(f)
        if not ps:
            continue
        p, t = np.concatenate(ps), np.concatenate(ts)
        w, fw = np.repeat(ws, lens), np.repeat(np.asarray(who, np.int64), lens)
        keep = t >= cutoff
        p, w, fw = p[keep], w[keep], fw[keep]
        if not len(p):
            continue
        uniq, first, inv = np.unique(p, return_index=True, return_inverse=True)
        total = np.bincount(inv, weights=w)
        kk = min(k, len(uniq))
        top = np.argpartition(-total, kk - 1)[:kk]
        rows.append(np.full(kk, r, np.int64))
        posts.append(uniq[top])
        scores.append(total[top])
        via.append(fw[first[top]])
    if not rows:
        return Candidates.empty()
    n = sum(len(x) for x in rows)
    return Candidates(np.concatenate(rows), np.concatenate(posts), np.full(n, SOURCE_CODE["social_proof"], np.int64),
                      np.concatenate(scores), np.concatenate(via))


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
