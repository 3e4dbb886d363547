"""Engagement counters: time-decayed per-post counts, totals, trending velocity, likes by bridging side and the
collaborative fold-in vectors; per user: decayed engagement by topic, event count and recent likes/reposts.

Decayed counters are kept as sums of ``w * exp(lam * (ts - t0))`` so that an update is an addition and a read at
time ``t`` multiplies by ``exp(-lam * (t - t0))``; the owner (``ServingState``) moves the origin ``t0`` forward
with ``rebase`` before the exponents get large.
"""

from __future__ import annotations

import math

import numpy as np

from glassfeed.domain import EventKind
from glassfeed.settings import StateSettings
from glassfeed.state._columns import Grow, decay_factors, group_by_user

#: Columns of the decayed per-post counter banks.
COUNTERS = ("impression", "click", "dwell", "like", "repost", "reply", "negative", "report")
C = {name: i for i, name in enumerate(COUNTERS)}
_KIND_TO_COUNTER = {
    EventKind.IMPRESSION: C["impression"],
    EventKind.CLICK: C["click"],
    EventKind.DWELL: C["dwell"],
    EventKind.LIKE: C["like"],
    EventKind.REPOST: C["repost"],
    EventKind.REPLY: C["reply"],
    EventKind.QUOTE: C["reply"],
    EventKind.SEE_LESS: C["negative"],
    EventKind.NOT_INTERESTED: C["negative"],
    EventKind.REPORT: C["report"],
}
_COUNTER_OF_KIND = np.full(max(int(k) for k in EventKind) + 1, -1, np.int64)
for _k, _c in _KIND_TO_COUNTER.items():
    _COUNTER_OF_KIND[int(_k)] = _c
#: Trending velocity weights per counter (engagement, not impressions).
TREND_WEIGHTS = np.array([0.0, 0.2, 0.2, 1.0, 2.0, 2.0, -2.0, -4.0])
_POSITIVE = np.array([C["like"], C["repost"], C["reply"], C["dwell"]])
#: Likers whose learned side is beyond +-BRIDGE_SIDE_T count for that side; the bridging score's prior.
BRIDGE_SIDE_T = 0.15
BRIDGE_PRIOR = 5.0
LIKES, REPOSTS = 0, 1  # banks of recent actions
_LIKE = int(EventKind.LIKE)
_REPOST = int(EventKind.REPOST)
_NO_ACTIONS = (np.zeros(0, np.int64), np.zeros(0))
for _a in _NO_ACTIONS:
    _a.setflags(write=False)


class Counters:
    """Per-post and per-user engagement aggregates (see the module docstring)."""

    def __init__(self, config: StateSettings) -> None:
        h = 3600.0
        self.lam_counter = math.log(2) / (config.counter_half_life_h * h)
        self.lam_trend = math.log(2) / (config.trending_half_life_h * h)
        self.recent_per_user = config.recent_actions_per_user
        self.t0 = 0.0
        self._counters = Grow(np.float64, 0.0, width=len(COUNTERS))
        self._totals = Grow(np.int32, 0, width=len(COUNTERS))  # all-time counts (read as int64)
        self._trend = Grow(np.float64, 0.0)
        self._side_likes = Grow(np.float64, 0.0, width=2)  # likers with side < -t / > +t
        self._post_vec: np.ndarray | None = None  # collaborative embedding per post (fold-in of likers)
        self._user_vec: np.ndarray | None = None
        self._user_side = Grow(np.float32, 0.0)  # bridging factor f_u (learned), 0 = unknown
        self._user_topic = Grow(np.float64, 0.0, width=8)
        self._user_events = Grow(np.int64, 0)
        self._user_engaged = Grow(np.int64, 0)  # positive engagements with a post that has a topic (not decayed)
        # per bank (LIKES, REPOSTS), per user: (posts, times) of the last ``recent_per_user`` actions, oldest first
        self._recent: tuple[dict[int, tuple[np.ndarray, np.ndarray]], ...] = ({}, {})

    # ------------------------------------------------------------------ sizes and learned inputs
    def ensure_users(self, n: int) -> None:
        for g in (self._user_side, self._user_events, self._user_engaged, self._user_topic):
            g.ensure(n)

    def _per_post(self) -> tuple[Grow, ...]:
        return (self._counters, self._totals, self._trend, self._side_likes)

    def ensure_posts(self, n: int) -> None:
        for g in self._per_post():
            g.ensure(n)
        if self._post_vec is not None and len(self._post_vec) < len(self._counters.a):
            pv = np.zeros((len(self._counters.a), self._post_vec.shape[1]), np.float32)
            pv[: len(self._post_vec)] = self._post_vec
            self._post_vec = pv

    def shift_posts(self, base: int) -> None:
        """Stop holding the rows of posts below idx ``base`` (``PostTable.shift_to``): they read as zero."""
        old = self._counters.base
        if base <= old:
            return
        for g in self._per_post():
            g.shift(base)
        if self._post_vec is not None:
            self._post_vec = self._post_vec[min(base - old, len(self._post_vec)) :].copy()

    def ensure_topics(self, n: int) -> None:
        self._user_topic.widen(n)

    def set_factors(self, user_vec: np.ndarray | None, side: np.ndarray | None) -> None:
        """Install trained user factors (collaborative fold-in) and bridging sides, before events are applied."""
        if side is not None:
            self._user_side.ensure(len(side))
            self._user_side.a[: len(side)] = side
        self._user_vec = user_vec
        self._post_vec = None if user_vec is None else np.zeros((len(self._counters.a), user_vec.shape[1]), np.float32)

    # ------------------------------------------------------------------ writes
    def rebase(self, t: float) -> None:
        """Move the decay origin to ``t`` so exponents stay bounded."""
        shift = t - self.t0
        self._counters.a *= math.exp(-self.lam_counter * shift)
        self._trend.a *= math.exp(-self.lam_trend * shift)
        self._user_topic.a *= math.exp(-self.lam_counter * shift)
        self.t0 = t

    def apply(
        self, kind: np.ndarray, user: np.ndarray, post: np.ndarray, ts: np.ndarray, post_topic: np.ndarray
    ) -> None:
        """Fold a batch of events in (``post`` <= 0 where an event has no post; ``post_topic`` per event)."""
        np.add.at(self._user_events.a, user, 1)
        has_post = post > 0
        kc = _COUNTER_OF_KIND[kind]
        m = has_post & (kc >= 0)
        b = self._counters.base  # events on posts below it are not applied (``ServingState.apply_events``)
        if m.any():
            p, c, t = post[m] - b, kc[m], ts[m]
            w = np.exp(self.lam_counter * (t - self.t0))
            np.add.at(self._counters.a, (p, c), w)
            np.add.at(self._totals.a, (p, c), 1)
            np.add.at(self._trend.a, p, TREND_WEIGHTS[c] * np.exp(self.lam_trend * (t - self.t0)))
            # topic affinity of the engaging user (positive engagement only)
            pos = np.isin(c, _POSITIVE)
            tp = post_topic[m][pos]
            ok = tp >= 0
            np.add.at(self._user_topic.a, (user[m][pos][ok], tp[ok]), w[pos][ok])
            np.add.at(self._user_engaged.a, user[m][pos][ok], 1)
        like = has_post & (kind == _LIKE)
        if like.any():
            side = self._user_side.a[user[like]]
            np.add.at(self._side_likes.a, (post[like][side < -BRIDGE_SIDE_T] - b, 0), 1.0)
            np.add.at(self._side_likes.a, (post[like][side > BRIDGE_SIDE_T] - b, 1), 1.0)
            if self._post_vec is not None and self._user_vec is not None:
                uu = user[like]
                ok = uu < len(self._user_vec)
                np.add.at(self._post_vec, post[like][ok] - b, self._user_vec[uu[ok]])
        for b, k_ in ((LIKES, _LIKE), (REPOSTS, _REPOST)):
            m = (kind == k_) & has_post
            if m.any():
                bank, keep = self._recent[b], self.recent_per_user
                bp, bt = post[m].astype(np.int64), ts[m].astype(np.float64)
                for u, at in group_by_user(user[m]):
                    old = bank.get(u)
                    ps, ts_ = (bp[at], bt[at]) if old is None else (np.r_[old[0], bp[at]], np.r_[old[1], bt[at]])
                    if len(ps) > keep:
                        ps, ts_ = ps[-keep:].copy(), ts_[-keep:].copy()
                    ps.setflags(write=False)
                    ts_.setflags(write=False)
                    bank[u] = (ps, ts_)

    def forget_user(self, u: int) -> None:
        """Drop what is derived from ``u`` alone: topic profile, event counts, recent likes/reposts, the learned
        bridging side and collaborative factor. Aggregates over many people (per-post counters, trending, likes
        by side, fold-in vectors) keep ``u``'s past share until the state is rebuilt from the store."""
        self._user_side.a[u] = 0.0
        if self._user_vec is not None and u < len(self._user_vec):
            self._user_vec[u] = 0.0
        for b in (LIKES, REPOSTS):
            self._recent[b].pop(u, None)
        self._user_topic.a[u] = 0.0
        self._user_events.a[u] = 0
        self._user_engaged.a[u] = 0

    # ------------------------------------------------------------------ per-post reads
    def decayed(self, posts: np.ndarray, now: float | np.ndarray) -> np.ndarray:
        """(n, len(COUNTERS)) decayed engagement counts of ``posts`` at ``now`` (a time, or one per post)."""
        return self._counters.take(posts) * decay_factors(self.lam_counter, now, self.t0, len(posts))[:, None]

    def trending(self, posts: np.ndarray, now: float | np.ndarray) -> np.ndarray:
        """Decayed engagement velocity of ``posts`` at ``now`` (a time, or one per post)."""
        return self._trend.take(posts) * decay_factors(self.lam_trend, now, self.t0, len(posts))

    def totals(self, posts: np.ndarray) -> np.ndarray:
        """(n, len(COUNTERS)) all-time event counts of ``posts`` (int64)."""
        return self._totals.take(posts).astype(np.int64)

    def bridging(self, posts: np.ndarray) -> np.ndarray:
        """Community-Notes-style bridging: smoothed share of likes from the weaker side, in [0, 0.5]."""
        s = self._side_likes.take(posts)
        return s.min(axis=1) / (s.sum(axis=1) + BRIDGE_PRIOR)

    @property
    def has_factors(self) -> bool:
        """Whether trained user factors are installed (the collaborative source's fold-in vectors exist)."""
        return self._user_vec is not None and self._post_vec is not None

    def post_vectors(self, posts: np.ndarray) -> np.ndarray:
        """Fold-in vectors (sum of likers' factors) of ``posts``; needs ``has_factors``."""
        assert self._post_vec is not None
        b = self._counters.base
        if not b:
            return self._post_vec[posts]
        out = self._post_vec[np.maximum(posts - b, 0)]
        out[posts < b] = 0.0
        return out

    # ------------------------------------------------------------------ per-user reads
    def user_vectors(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``users`` with a non-zero trained factor, their factors)."""
        if self._user_vec is None:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ok = np.flatnonzero(users < len(self._user_vec))
        vec = self._user_vec[users[ok]]
        has = np.abs(vec).sum(axis=1) > 0
        return ok[has], vec[has]

    def side(self, users: np.ndarray) -> np.ndarray:
        """Learned bridging side per user (0 = unknown)."""
        return self._user_side.a[users]

    def events(self, users: np.ndarray) -> np.ndarray:
        """Events each user has made."""
        return self._user_events.a[users]

    def topic_engagement(self, users: np.ndarray, row: np.ndarray, topics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For pairs (``users[row[i]]``, topic ``topics[i]``): (the user's decayed positive engagement with the topic,
        0 for topic -1; the user's total over all topics), both in the units of the decay origin: use their ratio."""
        tot = self._user_topic.a[users].sum(axis=1)[row]  # row sums per batch user, not per pair
        val = self._user_topic.a[users[row], np.where(topics >= 0, topics, 0)]
        return np.where(topics >= 0, val, 0.0), tot

    def topic_engagements(self, users: np.ndarray) -> np.ndarray:
        """How many positive engagements with a topic-bearing post each user has made (all time, not decayed)."""
        return self._user_engaged.a[users]

    def topic_profile(self, u: int) -> np.ndarray:
        """The user's decayed positive engagement per topic id (origin units)."""
        return self._user_topic.a[u].copy()

    def topic_profiles(self, users: np.ndarray, n_topics: int) -> np.ndarray:
        """``topic_profile`` of many users at once: (len(users), n_topics), origin units (use row shares)."""
        a = self._user_topic.a[np.asarray(users, np.int64)]
        out = np.zeros((len(a), n_topics))
        w = min(n_topics, a.shape[1])
        out[:, :w] = a[:, :w]
        return out

    def recent_actions(self, bank: int, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(posts, times) of a user's recent likes (bank ``LIKES``) or reposts (``REPOSTS``), oldest first
        (read-only arrays)."""
        return self._recent[bank].get(user, _NO_ACTIONS)
