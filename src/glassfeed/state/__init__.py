"""In-memory serving state, rebuilt from the store and updated per committed event.

Everything the feed reads on the request path lives here, in parts that each own their arrays and answer reads
through (vectorised) methods:

- ``users`` (``UserTable``): ids, handles, onboarding interests; ``topics`` (``Topics``): the topic vocabulary;
- ``posts`` (``PostTable``): authors, creation times, topics, reply flags, moderation, divisiveness, text;
- ``graph`` (``SocialGraph``): follows, followers, blocks, mutes;
- ``counters`` (``Counters``): decayed per-post counters, totals, trending, likes by bridging side, per-user topic
  engagement, event counts and recent likes/reposts;
- ``feedback`` (``Feedback``): user->author affinity, "see less", posts seen, muted words, saved preferences;
- ``usage`` (``Usage``): the pages each person was served within ``[state] usage_retention_h`` (time in the
  app, for the daily usage budget);
- ``visibility`` (``Visibility``): what moderation decided each post may do on each surface, with its reasons and
  the community notes shown (installed by ``glassfeed.moderation``, which rebuilds it from the moderation log).

The store stays the truth: ``ServingState.from_store`` rebuilds all of it, ``catch_up`` applies what other
workers committed, and ``apply_events`` folds in each committed ``EventBatch``. Feed sessions (what a paging
session was served) are the serving layer's (``glassfeed.feed.sessions``), not the state's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from glassfeed.content import ContentVectors
from glassfeed.domain import EventBatch, EventKind
from glassfeed.settings import StateSettings, packaged_settings
from glassfeed.state._columns import group_by_user, lookup_pairs, member_pairs
from glassfeed.state.counters import BRIDGE_PRIOR, BRIDGE_SIDE_T, COUNTERS, LIKES, REPOSTS, C, Counters
from glassfeed.state.feedback import Feedback
from glassfeed.state.graph import GRAPH_KINDS, SocialGraph
from glassfeed.state.posts import DROP_LABELS, PostTable
from glassfeed.state.topics import Topics
from glassfeed.state.usage import Usage
from glassfeed.state.users import UserTable
from glassfeed.state.visibility import ACTIONS, SURFACES, Visibility
from glassfeed.store import Store

#: Decay origins move forward on a fixed grid of this many "exponent units" (see ``ServingState._advance``).
_REBASE_EXP = 100.0
#: With a post retention window, posts that aged out are dropped once the cutoff has moved this share of the window
#: since the last drop: the state holds at most this share of a window beyond it, and drops are rare.
_PRUNE_STEP = 0.01
_GRAPH_KINDS = np.array(sorted(GRAPH_KINDS))


class ServingState:
    """Hot, in-memory view of the store used by candidate sources, features and filters (see the module doc)."""

    def __init__(self, config: StateSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or packaged_settings().state
        self.clock = clock
        self.topics = Topics()
        self.users = UserTable(self.topics)
        self.posts = PostTable(self.topics)
        self.graph = SocialGraph()
        self.counters = Counters(self.config)
        self.feedback = Feedback(self.config, self.posts.created)
        self.content = ContentVectors(self.config.content, self.topics)  # [state.content]: embeddings at ingest
        self.visibility = Visibility()  # moderation's outcome per post and surface (installed by the lever)
        self.usage = Usage(keep_s=self.config.usage_retention_h * 3600.0)  # recent pages (the daily usage budget)
        self.topics.on_new.append(self.counters.ensure_topics)
        self.last_seq = 0
        self.newest_ts = 0.0
        #: posts created this long before ``newest_ts`` (and events on them) are not held; 0 = every post. Set by
        #: ``from_store`` from ``[state] post_retention_days``: a replay for training (``for_replay``) keeps all.
        self.post_retention_s = 0.0
        self._pruned_to = 0.0  # the cutoff of the last drop
        self._origin = 0.0  # the first decay origin: later origins are origin + k * step
        self._step = _REBASE_EXP / max(self.counters.lam_trend, self.counters.lam_counter, self.feedback.lam_aff)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_store(
        cls,
        store: Store,
        config: StateSettings | None = None,
        clock: Callable[[], float] = time.time,
        user_vec: np.ndarray | None = None,
        side: np.ndarray | None = None,
    ) -> ServingState:
        """Rebuild the whole serving state from the durable store (with trained user factors/sides, if any). With
        ``[state] post_retention_days`` the posts created that long before the newest post are dropped once loaded
        and the events on them are not applied (``post_cutoff``)."""
        st = cls.for_replay(store, config, clock, user_vec=user_vec, side=side)
        st.post_retention_s = st.config.post_retention_days * 86400.0
        st.prune_posts()
        st.graph.load(store, follows=False, blocks_mutes=True)
        st.feedback.load(store)
        for chunk in store.iter_events():
            st.apply_events(chunk, graph=False)
        st.feedback.compact()
        return st

    @classmethod
    def for_replay(
        cls,
        store: Store,
        config: StateSettings | None = None,
        clock: Callable[[], float] = time.time,
        user_vec: np.ndarray | None = None,
        side: np.ndarray | None = None,
    ) -> ServingState:
        """Users, posts and the follow graph from the store, and no events yet: the state training replays the
        event log through (``from_store`` adds blocks, mutes, muted words, preferences and every event)."""
        st = cls(config, clock)
        st.add_users(store.load_users())
        st.counters.set_factors(user_vec, side)
        posts = store.load_posts()
        st._set_origin(float(posts["created_at"].min()) if len(posts["idx"]) else clock())
        st.add_posts(posts)
        st.graph.load(store, follows=True, blocks_mutes=False)
        return st

    def catch_up(self, store: Store) -> int:
        """Fold in what other writers (workers, a separate ingester) committed since ``last_seq``: their new users
        and posts, then their events up to the log's head as it was before those were read (so every event
        applied names a user and post already loaded), in ``seq`` order. Returns the events applied; events this
        state already holds are never applied twice (``apply_committed`` keeps ``last_seq`` gap-free)."""
        head = store.max_seq()
        self.add_users(store.load_users(since_idx=self.users.n))
        self.add_posts_from_store(store)
        n = 0
        if head > self.last_seq:
            for chunk in store.iter_events(since_seq=self.last_seq, until_seq=head):
                self.apply_events(chunk)
                n += len(chunk)
            self.last_seq = max(self.last_seq, head)  # the newest events may have been erased since
        return n

    def apply_committed(self, batch: EventBatch, store: Store) -> int:
        """Fold in a batch this process just committed (an ``Ingestor`` listener), keeping the log's order when
        other writers share the store: events committed elsewhere between ``last_seq`` and the batch are read and
        applied first (``catch_up``), and the batch's events at or below ``last_seq`` (already applied by a
        ``catch_up`` that ran between the commit and this call) are skipped. Returns the events applied."""
        if not len(batch):
            return 0
        first = int(batch.seq.min())
        n = 0
        if first > self.last_seq + 1:  # every seq below ``first`` is committed: numbers are assigned in commit order
            self.add_users(store.load_users(since_idx=self.users.n))
            self.add_posts_from_store(store)
            for chunk in store.iter_events(since_seq=self.last_seq, until_seq=first - 1):
                self.apply_events(chunk)
                n += len(chunk)
            self.last_seq = max(self.last_seq, first - 1)
        if first <= self.last_seq:
            batch = batch.take(batch.seq > self.last_seq)
        self.apply_events(batch)
        return n + len(batch)

    # ------------------------------------------------------------------ entities
    def add_users(self, users: dict[str, Any]) -> None:
        """Install user rows (as from ``Store.load_users``)."""
        self.users.add(users)
        n = self.users.n + 1
        self.graph.ensure_users(n)
        self.counters.ensure_users(n)

    def add_users_from_store(self, store: Store, idxs: list[int]) -> None:
        """Load newly created users (the rows after the lowest new idx), not the whole table."""
        if idxs:
            self.add_users(store.load_users(since_idx=min(idxs) - 1))

    def add_posts(self, posts: dict[str, Any]) -> None:
        """Install post rows (as from ``Store.load_posts``)."""
        if not len(posts["idx"]):
            return
        self.posts.add(posts)
        self.content.add_posts(
            posts["idx"], posts["text"], posts["created_at"], self.posts.topic(posts["idx"]), self.posts.newest_created
        )
        self.counters.ensure_posts(self.posts.capacity)
        self.newest_ts = max(self.newest_ts, self.posts.newest_created)
        self._prune_if_due()

    def add_posts_from_store(self, store: Store) -> None:
        self.add_posts(store.load_posts(since_idx=self.posts.n))

    # ------------------------------------------------------------------ retention
    def post_cutoff(self) -> float:
        """Posts created before this time are not held (``post_retention_s`` before ``newest_ts``); 0 = none."""
        return self.newest_ts - self.post_retention_s if self.post_retention_s > 0 else 0.0

    def prune_posts(self) -> int:
        """Drop what the state holds of posts created before ``post_cutoff``: their text, topics, labels and place
        in their author's list, then every row of the posts below the oldest idx still inside the window
        (``PostTable.shift_to``, ``Counters.shift_posts``): reads of those idx answer as for a post never loaded.
        Returns how many posts were dropped."""
        cutoff = self.post_cutoff()
        if cutoff <= self._pruned_to:
            return 0
        self._pruned_to = cutoff
        n = self.posts.forget_before(cutoff)
        base = self.posts.shift_to(cutoff)
        self.counters.shift_posts(base)
        self.content.shift_posts(base)
        return n

    def _prune_if_due(self) -> None:
        if self.post_retention_s > 0 and self.post_cutoff() - self._pruned_to >= _PRUNE_STEP * self.post_retention_s:
            self.prune_posts()

    def set_labels(self, labels: dict[int, list[str]]) -> None:
        """Install moderation labels for posts (drop labels remove them from every feed)."""
        self.posts.set_labels(labels)

    # ------------------------------------------------------------------ events
    @property
    def t0(self) -> float:
        """The current decay origin of every decayed quantity."""
        return self.counters.t0

    def _set_origin(self, t: float) -> None:
        self._origin = self.counters.t0 = self.feedback.t0 = t

    def _advance(self, tmax: float) -> None:
        """Keep exponents bounded: the origin is the last grid point ``origin + k * step`` at or before the newest
        event, so two states that have seen the same events share their origin however the events were
        batched (training's replay and a rebuilt serving state compute equal features)."""
        k = math.floor((tmax - self._origin) / self._step)
        t = self._origin + k * self._step
        if t > self.counters.t0:
            self.counters.rebase(t)
            self.feedback.rebase(t)

    def apply_events(self, batch: EventBatch, graph: bool = True) -> None:
        """Fold a batch of committed events into the state (``graph=False``: the follow/block/mute edges are
        already loaded from the store's edge tables)."""
        n = len(batch)
        if n == 0:
            return
        ts = batch.ts
        tmax = float(ts.max())
        if self.counters.t0 == 0.0:
            self._set_origin(float(ts.min()))
        self._advance(tmax)
        self.newest_ts = max(self.newest_ts, tmax)
        if len(batch.seq):
            self.last_seq = max(self.last_seq, int(batch.seq.max()))
        if self.post_retention_s > 0:  # events on posts older than the window are not held, as the posts are not
            self._prune_if_due()
            keep = (batch.post <= 0) | (self.posts.created(np.maximum(batch.post, 0)) >= self.post_cutoff())
            if not keep.all():
                batch = batch.take(keep)
                if not len(batch):
                    return
            ts = batch.ts
        kind = batch.kind.astype(np.int64)
        user, post = batch.user, batch.post
        has_post = post > 0
        safe = np.maximum(post, 0)
        self.counters.apply(kind, user, post, ts, self.posts.topic(safe))
        self.content.apply(kind, user, post, ts)
        authors = np.where(has_post, self.posts.author(safe), batch.target_user)
        self.feedback.apply(kind, user, post, ts, authors)
        imp = kind == int(EventKind.IMPRESSION)
        if imp.any():
            self.usage.apply(user[imp], ts[imp])
        if graph:
            for i in np.flatnonzero(np.isin(kind, _GRAPH_KINDS)).tolist():
                self.graph.apply(int(kind[i]), int(user[i]), int(batch.target_user[i]))

    def forget_user(self, u: int) -> None:
        """Drop a user's own and derived state after a data-rights erasure (``Store.delete_user_data``): the user
        row anonymised, their affinities, "see less", seen posts, muted words, preferences, topic profile, event
        counts, recent actions, learned side and collaborative factor, and the edges they made."""
        self.users.forget_user(u)
        self.feedback.forget_user(u)
        self.counters.forget_user(u)
        self.graph.forget_user(u)
        self.content.forget_user(u)
        self.usage.forget_user(u)

    def forget_posts(self, posts: list[int]) -> None:
        """Tombstone posts their author erased (``Store.erase_posts``): dropped from every feed."""
        if posts:
            self.posts.forget_posts(posts)
            self.content.forget_posts(posts)

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return self.users.n

    @property
    def n_posts(self) -> int:
        return self.posts.n


__all__ = [
    "ServingState",
    "Topics",
    "UserTable",
    "PostTable",
    "SocialGraph",
    "Counters",
    "Feedback",
    "Visibility",
    "SURFACES",
    "ACTIONS",
    "COUNTERS",
    "C",
    "LIKES",
    "REPOSTS",
    "DROP_LABELS",
    "BRIDGE_SIDE_T",
    "BRIDGE_PRIOR",
    "lookup_pairs",
    "member_pairs",
    "group_by_user",
]
