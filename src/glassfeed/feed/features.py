"""Hydrate (user, post) pairs into a float32 feature matrix, vectorised over the whole batch.

The same function serves training (features at impression time, from a replayed state) and serving, so the
heads never see a feature computed two different ways.
"""

from __future__ import annotations

import numpy as np

from glassfeed.state import COUNTERS, C, ServingState, group_by_user as _by_user, lookup_pairs

FEATURES: tuple[str, ...] = (
    "age_h", "author_followers_log", "in_network", "author_affinity", "topic_share",
    *(f"{c}_log" for c in COUNTERS),
    "like_rate", "click_rate", "negative_rate", "trending", "is_reply", "divisiveness", "bridging",
    "user_events_log", "user_following_log", "see_less_author", "text_len_log",
)
F = {name: i for i, name in enumerate(FEATURES)}
#: Cheap subset the first-stage (light) ranker uses.
LIGHT_FEATURES: tuple[str, ...] = ("age_h", "in_network", "author_affinity", "topic_share", "like_log",
                                   "repost_log", "reply_log", "like_rate", "trending")


def in_network(state: ServingState, users: np.ndarray, authors: np.ndarray) -> np.ndarray:
    """1 where the user follows the author."""
    out = np.zeros(len(users), np.bool_)
    for u, pos in _by_user(users):
        fol = state.following[u]
        if fol:
            out[pos] = np.isin(authors[pos], np.fromiter(fol, np.int64, len(fol)))
    return out


def affinities(state: ServingState, users: np.ndarray, authors: np.ndarray, now: float) -> np.ndarray:
    """Decayed user->author affinity per pair (X's real graph)."""
    return lookup_pairs(state.affinity, users, authors) * np.exp(-state.lam_aff * (now - state.t0))


def see_less_flags(state: ServingState, users: np.ndarray, authors: np.ndarray) -> np.ndarray:
    """Time of the user's last 'see less' on the author (0 if never)."""
    return lookup_pairs(state.see_less, users, authors)


def pair_features(state: ServingState, users: np.ndarray, posts: np.ndarray, now: float | np.ndarray,
                  in_net: np.ndarray | None = None, only: tuple[str, ...] | None = None) -> np.ndarray:
    """(n, len(FEATURES)) float32 features for user ``users[i]`` and post ``posts[i]`` at time ``now``.

    ``only`` computes just those columns (the rest stay 0): the light ranker scores ~1,000 candidates on a cheap
    subset, and the full set is computed for the few hundred it keeps.
    """
    n = len(posts)
    X = np.zeros((n, len(FEATURES)), np.float32)
    if n == 0:
        return X
    want = (lambda name: True) if only is None else set(only).__contains__
    authors = state.author.a[posts]
    now_arr = np.broadcast_to(np.asarray(now, dtype=np.float64), (n,))
    t_ref = float(np.max(now_arr))
    if want("age_h"):
        X[:, F["age_h"]] = (now_arr - state.created.a[posts]) / 3600.0
    if want("author_followers_log"):
        X[:, F["author_followers_log"]] = np.log1p(np.maximum(state.followers.a[authors], 0))
    if want("in_network"):
        X[:, F["in_network"]] = in_network(state, users, authors) if in_net is None else in_net
    if want("author_affinity"):
        X[:, F["author_affinity"]] = affinities(state, users, authors, t_ref)
    if want("topic_share"):
        X[:, F["topic_share"]] = state.user_topic_share(users, state.topic.a[posts])
    cnt = state.decayed_counters(posts, t_ref)
    for i, c in enumerate(COUNTERS):
        if want(f"{c}_log"):
            X[:, F[f"{c}_log"]] = np.log1p(np.maximum(cnt[:, i], 0))
    imp = cnt[:, C["impression"]] + 5.0
    X[:, F["like_rate"]] = cnt[:, C["like"]] / imp
    X[:, F["click_rate"]] = cnt[:, C["click"]] / imp
    X[:, F["negative_rate"]] = (cnt[:, C["negative"]] + cnt[:, C["report"]]) / imp
    if want("trending"):
        X[:, F["trending"]] = np.log1p(np.maximum(state.trending_scores(posts, t_ref), 0))
    if only is not None:
        return X
    X[:, F["is_reply"]] = state.is_reply.a[posts]
    X[:, F["divisiveness"]] = state.divisiveness.a[posts]
    X[:, F["bridging"]] = state.bridging_scores(posts)
    X[:, F["user_events_log"]] = np.log1p(state.user_events.a[users])
    for u, pos in _by_user(users):
        X[pos, F["user_following_log"]] = np.log1p(len(state.following[u]))
    X[:, F["see_less_author"]] = see_less_flags(state, users, authors) > 0
    X[:, F["text_len_log"]] = np.log1p(state.text_len.a[posts])
    return X
