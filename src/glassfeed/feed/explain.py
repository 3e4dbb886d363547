"""Why each item is in the page: its source in words, head x weight contributions, and every adjustment.

Invariant (tested): ``sum(c["contribution"] for c in contributions) + sum(a["delta"] for a in adjustments)``
equals the item's final ``score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glassfeed.feed.mixing import ADJUSTMENTS
from glassfeed.feed.policy import HEAD_WORDS, HEADS, SOURCES, Policy
from glassfeed.feed.sources.social_proof import engagers_followed
from glassfeed.state import ServingState

ADJUSTMENT_WORDS = {
    "out_of_network": "from an account you don't follow",
    "reply": "it is a reply",
    "divisiveness": "it may stoke hostility between groups",
    "bridging": "people on different sides liked it",
    "topic_preference": "you asked to see more or less of this topic",
    "see_less_fatigue": "you recently asked to see less of this author",
    "moderation": "a moderation rule or decision limits how far it spreads (see its statement of reasons)",
    "breadth": "placed for breadth: its topic would otherwise have been under-represented on this page, compared "
    "with the topics you engage with",
    "breadth_order": "kept above a post placed for breadth lower on this page: the page lists posts by score, and "
    "that post's raise took it above this one's",
    "exploration": "shown to help new posts be seen: a stated share of places is for posts few people have seen yet",
    "author_diversity": "another post by this author ranks above it",
}


def _names(state: ServingState, users: list[int]) -> str:
    handles = ["@" + state.users.handle_of(u) for u in users]
    return handles[0] if len(handles) == 1 else ", ".join(handles[:-1]) + " and " + handles[-1]


def source_reason(
    state: ServingState,
    user: int,
    post: int,
    source: str,
    via: int,
    full: bool = True,
    source_score: float = 0.0,
    author: int | None = None,
) -> str:
    """One sentence saying where the candidate came from (``full`` looks up every followed engager; ``author``:
    the post's author when the caller has read it already, as a page does for all its posts at once)."""
    if source == "following":
        if author is None:
            author = state.posts.author_of(post)
        if via:
            return f"{_names(state, [via])}, whom you follow, reposted it"
        return f"you follow {_names(state, [author])}"
    if source == "social_proof":
        if not full and via:
            more = " and others" if source_score > 1 else ""
            return f"liked by {_names(state, [via])}{more} whom you follow"
        who = engagers_followed(state, user, post) or ([via] if via else [])
        return f"liked by {_names(state, who)} whom you follow" if who else "liked by accounts you follow"
    if source == "trending":
        t = state.posts.topic_id_of(post)
        return f"popular in #{state.topics.name(t)} right now" if t >= 0 else "popular right now"
    if source == "cold_start":  # the topics a person picked; everyone's popular posts for the anonymous feed
        t = state.posts.topic_id_of(post)
        if t < 0:
            return "popular with new members"
        picked = user > 0 and t in state.users.interests_of(user)
        return f"popular in #{state.topics.name(t)}" + (", a topic you picked" if picked else " right now")
    if source == "content":  # stated topic, else the one inferred from the text
        t = state.posts.topic_id_of(post)
        t = t if t >= 0 else int(state.content.inferred_topic(np.array([post]))[0])
        return f"about #{state.topics.name(t)}, a topic you engage with" if t >= 0 else "about topics you engage with"
    return "people with similar likes engaged with it"


#: What an item's score is when no head predictions make it up (``Pages.ranker``), in words.
BASE_MEANINGS = {
    "recency": "newer posts rank higher: 1 / (1 + age in hours)",
    "lambdarank": "a learned ranking model's score (0 to 1) for how likely you are to engage with this post at "
    "all, trained to order each page by what people engaged with",
    "heads": "the weighted sum of the predicted chances",
}


def top_contributions(probs: np.ndarray, weights: np.ndarray, k: int = 3) -> list[list[dict[str, Any]]]:
    """The ``k`` largest |P(head) x weight| per item, vectorised over a page (the chosen values are gathered
    and turned into Python floats once for the page, not one numpy scalar at a time)."""
    contrib = probs * weights
    top = np.argsort(-np.abs(contrib), axis=1)[:, :k]
    prob_top = np.take_along_axis(probs, top, axis=1).tolist()
    contrib_top = np.take_along_axis(contrib, top, axis=1).tolist()
    w = weights.tolist()
    return [
        [
            {"head": HEADS[h], "probability": p, "weight": w[h], "contribution": c}
            for h, p, c in zip(row, prow, crow, strict=True)
        ]
        for row, prow, crow in zip(top.tolist(), prob_top, contrib_top, strict=True)
    ]


def adjustment_list(deltas: np.ndarray | list[float]) -> list[dict[str, Any]]:
    """The non-zero adjustments of one item (``deltas``: one value per ``ADJUSTMENTS``, an array row or a list
    of floats, as a page passes its rows from one ``tolist``), in their order. A loop over the row's few values:
    a page calls it once per item, and ``np.flatnonzero`` per row cost 3x more."""
    return [
        {"name": ADJUSTMENTS[i], "delta": d, "reason": ADJUSTMENT_WORDS[ADJUSTMENTS[i]]}
        for i, d in enumerate(deltas.tolist() if isinstance(deltas, np.ndarray) else deltas)
        if d
    ]


def explain_item(
    state: ServingState,
    user: int,
    post: int,
    source_code: int,
    via: int,
    policy: Policy,
    probs: np.ndarray | None,
    deltas: np.ndarray,
    score: float,
    position: int,
    interstitial: bool,
    base: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """The full breakdown for one served item (``probs`` None for recency ranking; ``base`` then names it)."""
    source = SOURCES[source_code]
    contributions: list[dict[str, Any]] = []
    if probs is not None:
        for h, name in enumerate(HEADS):
            w = float(policy.weights.get(name, 0.0))
            contributions.append(
                {
                    "head": name,
                    "probability": float(probs[h]),
                    "weight": w,
                    "contribution": float(probs[h] * w),
                    "meaning": f"chance that {HEAD_WORDS[name]}",
                }
            )
        contributions.sort(key=lambda c: -abs(c["contribution"]))
    elif base is not None:
        contributions.append(
            {
                "head": base[0],
                "probability": None,
                "weight": 1.0,
                "contribution": float(base[1]),
                "meaning": BASE_MEANINGS.get(base[0], base[0]),
            }
        )
    adjustments = adjustment_list(deltas)
    labels = state.posts.labels_of(post)
    return {
        "post": state.posts.id_of(post),
        "position": position,
        "source": source,
        "reason": source_reason(state, user, post, source, via),
        "policy": policy.name,
        "score": float(score),
        "contributions": contributions,
        "adjustments": adjustments,
        "interstitial": bool(interstitial),
        "labels": labels,
        "moderation": state.visibility.outcome(post) if state.visibility.any else {},
        "notes": state.visibility.notes(post),
        "user_adjusted_weights": policy.adjusted_by_user,
    }
