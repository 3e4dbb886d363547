"""Adjustments and page assembly: policy multipliers, author diversity, in/out-of-network balance, top-k.

Every adjustment is recorded as an additive delta per item, so an item's head contributions plus its
adjustment deltas add up exactly to its final score (the explanation's invariant).
"""

from __future__ import annotations

import numpy as np

from glassfeed.feed.policy import Policy

ADJUSTMENTS: tuple[str, ...] = (
    "out_of_network",
    "reply",
    "divisiveness",
    "bridging",
    "topic_preference",
    "see_less_fatigue",
    "author_diversity",
)
A = {name: i for i, name in enumerate(ADJUSTMENTS)}


def apply_adjustments(
    score: np.ndarray,
    policy: Policy,
    in_net: np.ndarray,
    is_reply: np.ndarray,
    divisiveness: np.ndarray,
    bridging: np.ndarray,
    fatigue: np.ndarray,
    topic_pref: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multiply the policy's named adjustments into ``score``; returns (new score, deltas (n, len(ADJUSTMENTS)))."""
    adj = policy.adjustments
    deltas = np.zeros((len(score), len(ADJUSTMENTS)))
    s = score.astype(np.float64).copy()
    factors = (
        ("out_of_network", np.where(in_net, 1.0, adj.out_of_network_factor)),
        ("reply", np.where(is_reply, adj.reply_factor, 1.0)),
        ("divisiveness", 1.0 - adj.divisiveness_penalty * divisiveness),
        ("bridging", 1.0 + adj.bridging_boost * bridging),
        ("topic_preference", np.ones(len(score)) if topic_pref is None else topic_pref),
        ("see_less_fatigue", fatigue),
    )
    for name, f in factors:
        new = s * f
        deltas[:, A[name]] = new - s
        s = new
    return s, deltas


def _rank_within(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """0-based occurrence count of each (row, key) pair, in the current order of the arrays."""
    order = np.lexsort((np.arange(len(rows)), keys, rows))
    r, k = rows[order], keys[order]
    start = np.ones(len(order), bool)
    start[1:] = (r[1:] != r[:-1]) | (k[1:] != k[:-1])
    idx = np.arange(len(order))
    group_start = np.maximum.accumulate(np.where(start, idx, 0))
    out = np.empty(len(order), np.int64)
    out[order] = idx - group_start
    return out


def assemble_pages(
    rows: np.ndarray,
    score: np.ndarray,
    authors: np.ndarray,
    in_net: np.ndarray,
    limit: int,
    policy: Policy,
    deltas: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick each user's page: author diversity (X: (1 - floor) * decay^k + floor for the k-th repeat), then the
    in/out-of-network caps, then the top ``limit`` by final score. Returns (selected indices in page order,
    final scores). ``deltas`` gets the diversity deltas filled in."""
    if not len(rows):
        return np.zeros(0, np.int64), score
    adj = policy.adjustments
    order = np.lexsort((-score, rows))
    k = np.empty(len(rows), np.int64)
    k[order] = _rank_within(rows[order], authors[order])
    decay, floor = adj.author_diversity_decay, adj.author_diversity_floor
    mult = (1.0 - floor) * decay**k + floor if decay < 1.0 else np.ones(len(rows))
    final = score * mult
    deltas[:, A["author_diversity"]] = final - score
    order = np.lexsort((-final, rows))
    mix = policy.mixing
    caps = np.where(in_net, int(np.floor(mix.in_network_share * limit)), int(np.floor(mix.out_network_share * limit)))
    r, inn = rows[order], in_net[order].astype(np.int64)
    pos_in_class = _rank_within(r, inn)
    ok = pos_in_class < caps[order]
    sel = order[ok]
    rank = _rank_within(rows[sel], np.zeros(len(sel), np.int64))
    sel = sel[rank < limit]
    return sel, final
