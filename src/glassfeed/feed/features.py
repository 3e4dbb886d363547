"""Hydrate (user, post) pairs into a float32 feature matrix, vectorised over the whole batch.

One computation for training and serving: ``pair_context`` gathers the per-pair facts several stages read (the
author, whether the pair is in-network, the last "see less" on the author), and ``pair_features`` turns a context
and a time into feature rows. Training calls both on logged impressions over its replayed state
(``feed.train.build_examples``); serving calls both on the candidates of ``pipeline.rank``. A row depends only on
(user, post, time) and the state, never on which other pairs share the call.

**In-network** (one definition, used by the ``in_network`` feature, the out-of-network adjustment and the page's
in/out-of-network caps): the user follows the post's author, or follows an account whose remembered reposts
(the state's last ``recent_actions_per_user`` reposts of that account) include the post, as X counts a repost
by a followed account as in-network. The candidate source a post arrived through plays no part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glassfeed.feed.candidates import expand_pairs
from glassfeed.state import COUNTERS, REPOSTS, C, ServingState, member_pairs

FEATURES: tuple[str, ...] = (
    "age_h",
    "author_followers_log",
    "in_network",
    "author_affinity",
    "topic_share",
    *(f"{c}_log" for c in COUNTERS),
    "like_rate",
    "click_rate",
    "negative_rate",
    "trending",
    "is_reply",
    "divisiveness",
    "user_events_log",
    "user_following_log",
    "see_less_author",
    "text_len_log",
)
F = {name: i for i, name in enumerate(FEATURES)}
#: Cheap subset the first-stage (light) ranker uses.
LIGHT_FEATURES: tuple[str, ...] = (
    "age_h",
    "in_network",
    "author_affinity",
    "topic_share",
    "like_log",
    "repost_log",
    "reply_log",
    "like_rate",
    "trending",
)


@dataclass(slots=True)
class PairContext:
    """Per-pair facts for pairs (``users[row[i]]``, ``posts[i]``), computed once by ``pair_context`` and narrowed
    with ``take`` as stages drop pairs. ``users`` are the batch's (distinct) users; ``row`` indexes them."""

    users: np.ndarray
    row: np.ndarray
    posts: np.ndarray
    user: np.ndarray  # users[row]
    authors: np.ndarray
    in_network: np.ndarray  # bool, see the module docstring
    see_less_at: np.ndarray  # time of the user's last "see less" on the author, 0 = never

    def __len__(self) -> int:
        return len(self.posts)

    def take(self, idx: np.ndarray) -> PairContext:
        return PairContext(
            self.users,
            self.row[idx],
            self.posts[idx],
            self.user[idx],
            self.authors[idx],
            self.in_network[idx],
            self.see_less_at[idx],
        )


def pair_context(state: ServingState, users: np.ndarray, row: np.ndarray, posts: np.ndarray) -> PairContext:
    """The context of pairs (``users[row[i]]``, ``posts[i]``); ``users`` should be distinct."""
    users = np.asarray(users, np.int64)
    row = np.asarray(row, np.int64)
    posts = np.asarray(posts, np.int64)
    user = users[row]
    authors = state.posts.author(posts)
    return PairContext(
        users,
        row,
        posts,
        user,
        authors,
        in_network(state, users, row, posts, authors),
        state.feedback.see_less_at(user, authors),
    )


def in_network(
    state: ServingState, users: np.ndarray, row: np.ndarray, posts: np.ndarray, authors: np.ndarray
) -> np.ndarray:
    """True where user ``users[row[i]]`` follows ``authors[i]`` or follows an account that reposted ``posts[i]``
    (the module docstring's definition). Batch-wide: one sorted code array per question, one binary search."""
    out = np.zeros(len(posts), bool)
    fr, followee = state.graph.follow_pairs(users)
    if not len(fr) or not len(posts):
        return out
    out |= member_pairs(np.sort((fr << 32) | followee), row, authors)
    actors, actor_of = np.unique(followee, return_inverse=True)
    reposted = [state.counters.recent_actions(REPOSTS, a)[0] for a in actors.tolist()]
    n_rep = np.fromiter(map(len, reposted), np.int64, len(reposted))
    if n_rep.any():
        r, at, _ = expand_pairs(fr, followee, actor_of, n_rep)
        out |= member_pairs(np.unique((r << 32) | np.concatenate(reposted)[at]), row, posts)
    return out


def topic_share(state: ServingState, ctx: PairContext) -> np.ndarray:
    """Share of the user's (decayed) positive engagement that went to the post's topic, blended with the
    onboarding prior (1 if the user picked the topic) with weight 1 / (1 + the user's positive engagements with
    topics): a count, so the value does not depend on the state's decay origin."""
    topics = state.posts.topic(ctx.posts)
    val, tot = state.counters.topic_engagement(ctx.users, ctx.row, topics)
    share = np.where(topics >= 0, val / np.maximum(tot, 1e-9), 0.0)
    safe = np.where(topics >= 0, topics, 0)
    picked = [state.users.interests_of(u) for u in ctx.users.tolist()]  # onboarding topics per batch user
    sizes = np.fromiter(map(len, picked), np.int64, len(picked))
    flat = np.fromiter((t for p in picked for t in p), np.int64, int(sizes.sum()))
    chose = np.zeros((len(picked), max(int(flat.max(initial=0)), int(safe.max(initial=0))) + 1), bool)
    chose[np.repeat(np.arange(len(picked)), sizes), flat] = True
    prior = (chose[ctx.row, safe] & (topics >= 0)).astype(np.float64)
    w = 1.0 / (1.0 + state.counters.topic_engagements(ctx.users)[ctx.row])  # the prior fades as the user engages
    return (1 - w) * share + w * prior


def pair_features(
    state: ServingState, ctx: PairContext, now: float | np.ndarray, only: tuple[str, ...] | None = None
) -> np.ndarray:
    """(n, len(FEATURES)) float32 features of the context's pairs at ``now`` (a time, or one per pair).

    ``only`` computes just those columns (the rest stay 0): the light ranker scores ~1,000 candidates on a cheap
    subset, and the full set is computed for the few hundred it keeps.
    """
    n = len(ctx)
    X = np.zeros((n, len(FEATURES)), np.float32)
    if n == 0:
        return X
    want = (lambda name: True) if only is None else set(only).__contains__
    posts, authors = ctx.posts, ctx.authors
    now_arr = np.broadcast_to(np.asarray(now, dtype=np.float64), (n,))
    if want("age_h"):
        X[:, F["age_h"]] = (now_arr - state.posts.created(posts)) / 3600.0
    if want("author_followers_log"):
        X[:, F["author_followers_log"]] = np.log1p(np.maximum(state.graph.follower_count(authors), 0))
    if want("in_network"):
        X[:, F["in_network"]] = ctx.in_network
    if want("author_affinity"):
        X[:, F["author_affinity"]] = state.feedback.affinity(ctx.user, authors, now)
    if want("topic_share"):
        X[:, F["topic_share"]] = topic_share(state, ctx)
    cnt = state.counters.decayed(posts, now)
    for i, c in enumerate(COUNTERS):
        if want(f"{c}_log"):
            X[:, F[f"{c}_log"]] = np.log1p(np.maximum(cnt[:, i], 0))
    imp = cnt[:, C["impression"]] + 5.0
    X[:, F["like_rate"]] = cnt[:, C["like"]] / imp
    X[:, F["click_rate"]] = cnt[:, C["click"]] / imp
    X[:, F["negative_rate"]] = (cnt[:, C["negative"]] + cnt[:, C["report"]]) / imp
    if want("trending"):
        X[:, F["trending"]] = np.log1p(np.maximum(state.counters.trending(posts, now), 0))
    if only is not None:
        return X
    X[:, F["is_reply"]] = state.posts.is_reply(posts)
    X[:, F["divisiveness"]] = state.posts.divisiveness(posts)
    X[:, F["user_events_log"]] = np.log1p(state.counters.events(ctx.user))
    X[:, F["user_following_log"]] = np.log1p(state.graph.following_count(ctx.users))[ctx.row]
    X[:, F["see_less_author"]] = ctx.see_less_at > 0
    X[:, F["text_len_log"]] = np.log1p(state.posts.text_len(posts))
    return X


__all__ = [
    "FEATURES",
    "F",
    "LIGHT_FEATURES",
    "PairContext",
    "pair_context",
    "pair_features",
    "in_network",
    "topic_share",
]
