"""Social-proof source: posts liked or reposted recently by accounts the user follows (like X's UTEG/GraphJet)."""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import SOURCE_CODE, Candidates, expand_pairs, top_k_per_row
from glassfeed.state import LIKES, REPOSTS, ServingState


def social_proof(state: ServingState, users: np.ndarray, now: float, k: int, cutoff: float, **_: object) -> Candidates:
    """Score = number of followed accounts who engaged (reposts count double); ``via`` = one of them.

    Batch-wide: the (user, followed account) pairs are expanded into the accounts' recent actions in one flat
    table, then summed per (user, post), so the cost is numpy work rather than a Python loop per pair.
    """
    row, followee = state.graph.follow_pairs(users)
    if not len(row):
        return Candidates.empty()
    actors, actor_of = np.unique(followee, return_inverse=True)
    post, weight, n_act = _recent_engagement(state, actors, cutoff)
    r, at, who = expand_pairs(row, followee, actor_of, n_act)
    if not len(at):
        return Candidates.empty()
    uniq, where, inv = np.unique((r << 32) | post[at], return_index=True, return_inverse=True)
    score = np.bincount(inv, weights=weight[at])
    via = who[where]  # the first followed account (in follow-set order) that engaged
    top = top_k_per_row(uniq >> 32, score, k)
    return Candidates(
        uniq[top] >> 32,
        uniq[top] & 0xFFFFFFFF,
        np.full(len(top), SOURCE_CODE["social_proof"], np.int64),
        score[top],
        via[top],
    )


def _recent_engagement(
    state: ServingState, actors: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (post, weight) of each actor's likes (1) then reposts (2) since ``cutoff``, and a count per actor."""
    # actor-major, likes first
    banks = [state.counters.recent_actions(bank, f) for f in actors.tolist() for bank in (LIKES, REPOSTS)]
    sizes = np.fromiter((len(p) for p, _ in banks), np.int64, len(banks))
    if not sizes.any():
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(len(actors), np.int64)
    post = np.concatenate([p for p, _ in banks])
    ts = np.concatenate([t for _, t in banks])
    slot = np.repeat(np.arange(len(banks)), sizes)  # actor * 2 + bank
    ok = ts >= cutoff
    return post[ok], np.where(slot[ok] % 2, 2.0, 1.0), np.bincount(slot[ok] // 2, minlength=len(actors))


def engagers_followed(state: ServingState, user: int, post: int, limit: int = 3) -> list[int]:
    """Followed accounts who liked or reposted ``post`` (for the explanation's 'liked by A and B')."""
    out = []
    for f in state.graph.following(user):
        if any((state.counters.recent_actions(bank, f)[0] == post).any() for bank in (LIKES, REPOSTS)):
            out.append(f)
            if len(out) >= limit:
                break
    return out
