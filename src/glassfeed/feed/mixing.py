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
    "moderation",  # a moderation rule or decision downranked the post on this surface (state.visibility)
    "exploration",  # a stated share of places for new or uncertain posts (``feed/explore.py``)
    "author_diversity",
    "breadth",  # placed above higher-scoring posts so the page's topics match the person's (``feed/breadth.py``)
    "breadth_order",  # raised only to stay above a post placed for breadth below it (``feed/breadth.py``)
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
    moderation: np.ndarray | None = None,
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
        ("moderation", np.ones(len(score)) if moderation is None else moderation),
    )
    for name, f in factors:
        new = s * f
        deltas[:, A[name]] = new - s
        s = new
    return s, deltas


def rank_within(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
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


def side_caps(in_net: np.ndarray, limit: int, policy: Policy) -> np.ndarray:
    """Per item: how many places a page of ``limit`` gives its side (in-network or not) before filling,
    ``floor(share * limit)`` with the policy's ``[mixing]`` shares."""
    mix = policy.mixing
    return np.where(in_net, int(np.floor(mix.in_network_share * limit)), int(np.floor(mix.out_network_share * limit)))


def author_diversity(
    rows: np.ndarray, score: np.ndarray, authors: np.ndarray, policy: Policy, deltas: np.ndarray
) -> np.ndarray:
    """X's author-diversity multiplier ``(1 - floor) * decay^k + floor`` for an author's k-th repeat in each user's
    candidates by score (ties by index); returns the final scores and fills ``deltas[:, A["author_diversity"]]``."""
    adj = policy.adjustments
    order = np.lexsort((-score, rows))
    k = np.empty(len(rows), np.int64)
    k[order] = rank_within(rows[order], authors[order])
    decay, floor = adj.author_diversity_decay, adj.author_diversity_floor
    mult = (1.0 - floor) * decay**k + floor if decay < 1.0 else np.ones(len(rows))
    final = score * mult
    deltas[:, A["author_diversity"]] = final - score
    return final


def usable_sides(in_net: np.ndarray, policy: Policy) -> np.ndarray:
    """Per item: whether its side (in-network or not) may fill a page beyond the caps (a side whose share is 0 never
    does: "at most 0%" is a rule)."""
    mix = policy.mixing
    return np.where(in_net, mix.in_network_share > 0, mix.out_network_share > 0)


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
    in/out-of-network caps, then the top ``limit`` by final score. A page the caps left short is filled with the
    best-scoring candidates the caps held back (a side whose share is 0 is never used), so a page is shorter
    than ``limit`` only when fewer eligible candidates exist. Returns (selected indices in page order: by user,
    then final score, ties by index; final scores). ``deltas`` gets the diversity deltas filled in; filling
    changes no score (``filled_items`` tells which items it placed)."""
    if not len(rows):
        return np.zeros(0, np.int64), score
    final = author_diversity(rows, score, authors, policy, deltas)
    order = np.lexsort((-final, rows))
    r, inn = rows[order], in_net[order]
    ok = rank_within(r, inn.astype(np.int64)) < side_caps(inn, limit, policy)
    sel = order[ok]
    sel = sel[rank_within(rows[sel], np.zeros(len(sel), np.int64)) < limit]
    # fill: the caps are a balance, not a reason to serve fewer posts than exist
    short = limit - np.bincount(rows[sel], minlength=int(rows.max()) + 1)
    usable = usable_sides(inn, policy)
    spare = order[~ok & usable]  # held back by a cap, still in (user, final score) order
    spare = spare[rank_within(rows[spare], np.zeros(len(spare), np.int64)) < short[rows[spare]]]
    if len(spare):
        sel = np.concatenate([sel, spare])
        sel = sel[np.lexsort((sel, -final[sel], rows[sel]))]
    return sel, final


def filled_items(rows: np.ndarray, in_net: np.ndarray, limit: int, policy: Policy) -> np.ndarray:
    """Which items of pages from ``assemble_pages`` (given in page order) were placed to fill a page beyond their
    side's cap: a side's items on a page are its best-scoring candidates, so those past the cap are the filled ones."""
    return rank_within(rows, np.asarray(in_net).astype(np.int64)) >= side_caps(in_net, limit, policy)


def fill_note(in_network: bool, limit: int, policy: Policy) -> str:
    """The explanation of an item ``filled_items`` marks, in words."""
    share = policy.mixing.in_network_share if in_network else policy.mixing.out_network_share
    cap = int(side_caps(np.array([in_network]), limit, policy)[0])
    side = "from accounts you follow" if in_network else "from accounts you don't follow"
    return (
        f"added to fill the page: posts {side} usually take at most {cap} of {limit} places "
        f"({100 * share:.0f}%), but the posts within both shares could not fill the page, so the best-scoring "
        "posts left filled it"
    )
