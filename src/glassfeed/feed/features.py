"""Hydrate (user, post) pairs into a float32 feature matrix, vectorised over the whole batch.

The same function serves training (features at impression time, from a replayed state) and serving, so the
heads never see a feature computed two different ways.
"""

from __future__ import annotations

import numpy as np

from glassfeed.state import COUNTERS, C, ServingState

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
    fol = state.following
    return np.fromiter((a in fol[u] for u, a in zip(users.tolist(), authors.tolist())), np.bool_, len(users))


def affinities(state: ServingState, users: np.ndarray, authors: np.ndarray, now: float) -> np.ndarray:
    """Decayed user->author affinity per pair (X's real graph)."""
    out = np.zeros(len(users))
    aff = state.affinity
    if not aff:
        return out
    f = np.exp(-state.lam_aff * (now - state.t0))
    for i, (u, a) in enumerate(zip(users.tolist(), authors.tolist())):
        row = aff.get(u)
        if row:
            out[i] = row.get(a, 0.0)
    return out * f


def see_less_flags(state: ServingState, users: np.ndarray, authors: np.ndarray) -> np.ndarray:
    """Time of the user's last 'see less' on the author (0 if never)."""
    out = np.zeros(len(users))
    if not state.see_less:
        return out
    sl = state.see_less
    for i, (u, a) in enumerate(zip(users.tolist(), authors.tolist())):
        row = sl.get(u)
        if row:
            out[i] = row.get(a, 0.0)
    return out


def pair_features(state: ServingState, users: np.ndarray, posts: np.ndarray, now: float | np.ndarray,
                  in_net: np.ndarray | None = None) -> np.ndarray:
    """(n, len(FEATURES)) float32 features for user ``users[i]`` and post ``posts[i]`` at time ``now``."""
    n = len(posts)
    X = np.zeros((n, len(FEATURES)), np.float32)
    if n == 0:
        return X
    authors = state.author.a[posts]
    now_arr = np.broadcast_to(np.asarray(now, dtype=np.float64), (n,))
    X[:, F["age_h"]] = (now_arr - state.created.a[posts]) / 3600.0
    X[:, F["author_followers_log"]] = np.log1p(np.maximum(state.followers.a[authors], 0))
    X[:, F["in_network"]] = in_network(state, users, authors) if in_net is None else in_net
    t_ref = float(np.max(now_arr))
    X[:, F["author_affinity"]] = affinities(state, users, authors, t_ref)
    X[:, F["topic_share"]] = state.user_topic_share(users, state.topic.a[posts])
    cnt = state.decayed_counters(posts, t_ref)
    for i, c in enumerate(COUNTERS):
        X[:, F[f"{c}_log"]] = np.log1p(np.maximum(cnt[:, i], 0))
    imp = cnt[:, C["impression"]] + 5.0
    X[:, F["like_rate"]] = cnt[:, C["like"]] / imp
    X[:, F["click_rate"]] = cnt[:, C["click"]] / imp
    X[:, F["negative_rate"]] = (cnt[:, C["negative"]] + cnt[:, C["report"]]) / imp
    X[:, F["trending"]] = np.log1p(np.maximum(state.trending_scores(posts, t_ref), 0))
    X[:, F["is_reply"]] = state.is_reply.a[posts]
    X[:, F["divisiveness"]] = state.divisiveness.a[posts]
    X[:, F["bridging"]] = state.bridging_scores(posts)
    X[:, F["user_events_log"]] = np.log1p(state.user_events.a[users])
    X[:, F["user_following_log"]] = np.log1p(np.fromiter((len(state.following[u]) for u in users.tolist()),
                                                         np.float64, n))
    last = see_less_flags(state, users, authors)
    X[:, F["see_less_author"]] = last > 0
    X[:, F["text_len_log"]] = np.log1p(np.fromiter((len(state.text[p]) for p in posts.tolist()), np.float64, n))
    return X
