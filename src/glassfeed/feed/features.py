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

**Retrieval features** (X's heavy ranker sees its candidate sources' scores): which sources produced the pair
(``src_<source>``, ``n_sources``; 0 for a logged impression no source would produce today), the social-proof
count (followed accounts who engaged), and ``collab_score``, the collaborative model's score of the pair
(``PairScorer``: ALS user factor x post fold-in vector, or EASE), computed for every pair whichever source found
it, and ``collab_gap``, that score minus the top score of the user's collaborative list (a fact of the candidate
stage, the same for all the user's pairs, so a row still depends on no other pair of the call); ``content_sim``
is the cosine between the person's content vector and the post's embedding (``glassfeed.content``).
``position`` is the page slot an impression was shown at: training reads it from the log, serving always asks at
slot 0, so the heads predict appeal at the top slot rather than the old ranking's position effect (the "shallow
tower" idea of Zhao et al. 2019; ``[train] position_feature``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from glassfeed.content import content_similarity
from glassfeed.feed.candidates import SOURCE_CODE, expand_pairs, no_facts
from glassfeed.feed.policy import SOURCES
from glassfeed.state import COUNTERS, REPOSTS, C, ServingState, member_pairs


class PairScorer(Protocol):
    """A collaborative model that scores any (user, post) pair (NaN where it cannot: no factor, no history)."""

    def pair_scores(self, state: ServingState, users: np.ndarray, row: np.ndarray, posts: np.ndarray) -> np.ndarray: ...


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
    "position",
    "collab_score",
    "collab_rank",
    "collab_gap",
    "content_sim",
    "social_proof",
    "n_sources",
    *(f"src_{s}" for s in SOURCES),
)
F = {name: i for i, name in enumerate(FEATURES)}
#: ``collab_rank`` of a pair the collaborative source did not find (beyond any list a policy may ask for).
COLLAB_RANK_MISSING = 10_000.0
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
    "collab_score",
    "collab_rank",
    "n_sources",
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
    #: bit ``SOURCE_CODE[s]`` set where source s produced the pair (0: no source, e.g. a logged impression)
    source_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: the social-proof source's score of the pair (followed accounts who engaged; 0 where it did not find it)
    social_proof: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the post's 0-based place in the user's collaborative list (NaN where that source did not find it)
    collab_rank: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the highest collaborative score in the user's list (the same for all the user's pairs; NaN: none)
    collab_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: page slot the pair was shown at (training, from the log; NaN unknown); None = serving, asked at slot 0
    position: np.ndarray | None = None

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
            self.source_mask[idx],
            self.social_proof[idx],
            self.collab_rank[idx],
            self.collab_top[idx],
            None if self.position is None else self.position[idx],
        )


def pair_context(
    state: ServingState,
    users: np.ndarray,
    row: np.ndarray,
    posts: np.ndarray,
    facts: Mapping[str, np.ndarray] | None = None,
    position: np.ndarray | None = None,
) -> PairContext:
    """The context of pairs (``users[row[i]]``, ``posts[i]``); ``users`` should be distinct. ``facts`` are the
    candidate table's ``CANDIDATE_FACTS`` (``Candidates.extra`` after ``dedupe``; absent: no source found the
    pairs), ``position`` a logged impression's slot (training only)."""
    users = np.asarray(users, np.int64)
    row = np.asarray(row, np.int64)
    posts = np.asarray(posts, np.int64)
    user = users[row]
    authors = state.posts.author(posts)
    f = facts if facts is not None else no_facts(len(posts))
    return PairContext(
        users,
        row,
        posts,
        user,
        authors,
        in_network(state, users, row, posts, authors),
        state.feedback.see_less_at(user, authors),
        np.asarray(f["source_mask"], np.int64),
        np.asarray(f["social_proof"], np.float64),
        np.asarray(f["collab_rank"], np.float64),
        np.asarray(f["collab_top"], np.float64),
        None if position is None else np.asarray(position, np.float64),
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


def _nan_to(x: np.ndarray, value: float) -> np.ndarray:
    """``np.nan_to_num(x, nan=value)`` (NaN to ``value``; infinities to the dtype's extremes), in three array
    operations where no infinity occurs (numpy's own is a dozen Python-level steps, twice a request)."""
    out = np.where(np.isnan(x), value, x)
    return out if np.isfinite(out).all() else np.nan_to_num(x, nan=value)


def pair_features(
    state: ServingState,
    ctx: PairContext,
    now: float | np.ndarray,
    only: tuple[str, ...] | None = None,
    scorer: PairScorer | None = None,
    light: np.ndarray | None = None,
) -> np.ndarray:
    """(n, len(FEATURES)) float32 features of the context's pairs at ``now`` (a time, or one per pair).

    ``only`` computes just those columns (the rest stay 0): the light ranker scores ~1,000 candidates on a cheap
    subset, and the full set is computed for the few hundred it keeps. ``light``: these pairs' rows from that
    first call (``only=LIGHT_FEATURES``, same ``now``), whose columns are copied rather than computed again.
    ``scorer`` is the collaborative model behind ``collab_score`` (None: the column is 0, as for a pair the
    model cannot score).
    """
    n = len(ctx)
    X = np.zeros((n, len(FEATURES)), np.float32) if light is None else light.copy()
    if n == 0:
        return X
    done = frozenset(LIGHT_FEATURES) if light is not None else frozenset()
    want = (lambda name: name not in done) if only is None else (lambda name: name in only and name not in done)
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
    if want("collab_score") and scorer is not None:
        X[:, F["collab_score"]] = _nan_to(scorer.pair_scores(state, ctx.users, ctx.row, posts), 0.0)
    if want("collab_rank"):  # log of the place, and one place past the longest list where the source did not find it
        X[:, F["collab_rank"]] = np.log1p(_nan_to(ctx.collab_rank, COLLAB_RANK_MISSING))
    if want("n_sources"):
        X[:, F["n_sources"]] = np.bitwise_count(ctx.source_mask.astype(np.uint64))
    if only is not None:
        return X
    X[:, F["is_reply"]] = state.posts.is_reply(posts)
    X[:, F["divisiveness"]] = state.posts.divisiveness(posts)
    X[:, F["user_events_log"]] = np.log1p(state.counters.events(ctx.user))
    X[:, F["user_following_log"]] = np.log1p(state.graph.following_count(ctx.users))[ctx.row]
    X[:, F["see_less_author"]] = ctx.see_less_at > 0
    X[:, F["text_len_log"]] = np.log1p(state.posts.text_len(posts))
    X[:, F["position"]] = 0.0 if ctx.position is None else ctx.position
    X[:, F["social_proof"]] = np.log1p(ctx.social_proof)
    # how far below the top of the person's own collaborative list: unlike the raw score, this does not move when
    # the model's scale does (a longer history, a refit), so the heads' splits on it carry over from training
    X[:, F["collab_gap"]] = X[:, F["collab_score"]] - ctx.collab_top if scorer is not None else np.nan
    # cos(person's content vector, post embedding), the vectors read at the call's latest time (one per person)
    X[:, F["content_sim"]] = content_similarity(state, ctx.users, ctx.row, posts, float(now_arr.max()))
    for s in SOURCES:
        X[:, F[f"src_{s}"]] = (ctx.source_mask >> SOURCE_CODE[s]) & 1
    return X


__all__ = [
    "FEATURES",
    "F",
    "LIGHT_FEATURES",
    "PairContext",
    "PairScorer",
    "pair_context",
    "pair_features",
    "in_network",
    "topic_share",
]
