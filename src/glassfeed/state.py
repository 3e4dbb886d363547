"""In-memory serving state, rebuilt from the store and updated per committed event.

Everything the feed reads on the request path lives here: posts and their authors, the follow/block/mute
graph, time-decayed engagement counters per post, user->author affinity (X's "real graph"), per-topic user
affinity, what each user has been served, recent likes/reposts (social proof), "see less" feedback, muted
words and saved preferences. The store stays the truth: ``ServingState.from_store`` rebuilds all of it.

Decayed counters are kept as sums of ``w * exp(lam * (ts - t0))`` so that an update is an addition and a read at
time ``t`` multiplies by ``exp(-lam * (t - t0))``; ``t0`` is re-based before the exponent gets large.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from glassfeed.config import load_toml_resource
from glassfeed.domain import EventKind
from glassfeed.store import SQLiteStore

#: Columns of the decayed per-post counter banks.
COUNTERS = ("impression", "click", "dwell", "like", "repost", "reply", "negative", "report")
C = {name: i for i, name in enumerate(COUNTERS)}
_KIND_TO_COUNTER = {
    EventKind.IMPRESSION: C["impression"], EventKind.CLICK: C["click"], EventKind.DWELL: C["dwell"],
    EventKind.LIKE: C["like"], EventKind.REPOST: C["repost"], EventKind.REPLY: C["reply"],
    EventKind.QUOTE: C["reply"], EventKind.SEE_LESS: C["negative"], EventKind.NOT_INTERESTED: C["negative"],
    EventKind.REPORT: C["report"],
}
#: Trending velocity weights per counter (engagement, not impressions).
TREND_WEIGHTS = np.array([0.0, 0.2, 0.2, 1.0, 2.0, 2.0, -2.0, -4.0])
_REBASE_EXP = 200.0


@dataclass(slots=True)
class StateConfig:
    counter_half_life_h: float = 72.0
    trending_half_life_h: float = 6.0
    affinity_half_life_h: float = 336.0
    recent_actions_per_user: int = 200
    session_ttl_s: float = 3600.0
    affinity_weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_defaults(cls) -> "StateConfig":
        raw = load_toml_resource("defaults.toml")["state"]
        return cls(**raw)


class _Grow:
    """A growable numpy column indexed by entity idx (slot 0 unused, as store idx starts at 1)."""

    def __init__(self, dtype: Any, fill: Any, width: int | None = None) -> None:
        self.fill = fill
        self.width = width
        shape = (16,) if width is None else (16, width)
        self.a = np.full(shape, fill, dtype=dtype)

    def ensure(self, n: int) -> None:
        if n > len(self.a):
            cap = max(n, 2 * len(self.a))
            shape = (cap,) if self.width is None else (cap, self.a.shape[1])
            b = np.full(shape, self.fill, dtype=self.a.dtype)
            b[: len(self.a)] = self.a
            self.a = b

    def widen(self, width: int) -> None:
        if self.width is not None and width > self.a.shape[1]:
            b = np.full((len(self.a), max(width, 2 * self.a.shape[1])), self.fill, dtype=self.a.dtype)
            b[:, : self.a.shape[1]] = self.a
            self.a = b


class ServingState:
    """Hot, in-memory view of the store used by candidate sources, features and filters."""

    def __init__(self, config: StateConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.cfg = config or StateConfig.from_defaults()
        self.clock = clock
        h = 3600.0
        self.lam_counter = math.log(2) / (self.cfg.counter_half_life_h * h)
        self.lam_trend = math.log(2) / (self.cfg.trending_half_life_h * h)
        self.lam_aff = math.log(2) / (self.cfg.affinity_half_life_h * h)
        self.t0 = 0.0
        self.last_seq = 0
        self.newest_ts = 0.0
        # users
        self.user_ids: list[str | None] = [None]
        self.user_index: dict[str, int] = {}
        self.handles: list[str] = [""]
        self.user_interests: list[list[int]] = [[]]
        self.user_community = _Grow(np.int32, -1)
        self.user_side = _Grow(np.float32, 0.0)  # bridging factor f_u (learned), 0 = unknown
        self.following: list[set[int]] = [set()]
        self.followers = _Grow(np.int64, 0)
        self.blocked: dict[int, set[int]] = {}
        self.blocked_by: dict[int, set[int]] = {}
        self.muted: dict[int, set[int]] = {}
        self.muted_words: dict[int, list[str]] = {}
        self.prefs: dict[int, dict[str, Any]] = {}
        self.user_events = _Grow(np.int64, 0)
        # posts
        self.post_ids: list[str | None] = [None]
        self.post_index: dict[str, int] = {}
        self.n_posts = 0
        self.author = _Grow(np.int64, 0)
        self.created = _Grow(np.float64, 0.0)
        self.topic = _Grow(np.int32, -1)  # primary topic id
        self.is_reply = _Grow(np.bool_, False)
        self.labelled = _Grow(np.int8, 0)  # 0 none, 1 interstitial/label, 2 drop
        self.divisiveness = _Grow(np.float32, 0.0)
        self.text_len = _Grow(np.int32, 0)
        self.text: list[str] = [""]
        self.text_lower: list[str] = [""]
        self.post_topics: list[list[str]] = [[]]
        self.labels: list[list[str]] = [[]]
        self.author_posts: dict[int, list[int]] = {}
        # topics
        self.topic_names: list[str] = []
        self.topic_index: dict[str, int] = {}
        # decayed counters
        self.counters = _Grow(np.float64, 0.0, width=len(COUNTERS))
        self.totals = _Grow(np.int64, 0, width=len(COUNTERS))
        self.trend = _Grow(np.float64, 0.0)
        self.side_likes = _Grow(np.float64, 0.0, width=2)  # likers with side < -t / > +t
        self.post_vec: np.ndarray | None = None  # collaborative embedding per post (fold-in of engagers)
        self.user_vec: np.ndarray | None = None
        self.user_topic = _Grow(np.float64, 0.0, width=8)
        self.affinity: dict[int, dict[int, float]] = {}
        self.see_less: dict[int, dict[int, float]] = {}  # user -> author -> last see_less time
        self.seen: dict[int, set[int]] = {}
        self.sessions: dict[str, tuple[float, set[int]]] = {}
        self.recent_likes: dict[int, deque[tuple[int, float]]] = {}
        self.recent_reposts: dict[int, deque[tuple[int, float]]] = {}
        self._recent_np: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (bank, user) -> posts, ts
        self._aff_w = np.zeros(max(int(k) for k in EventKind) + 1)
        for name, w in self.cfg.affinity_weights.items():
            self._aff_w[int(EventKind.parse(name))] = w

    # ------------------------------------------------------------------ build
    @classmethod
    def from_store(cls, store: SQLiteStore, config: StateConfig | None = None,
                   clock: Callable[[], float] = time.time, user_vec: np.ndarray | None = None,
                   side: np.ndarray | None = None) -> "ServingState":
        """Rebuild the whole serving state from the durable store (with trained user factors/sides, if any)."""
        st = cls(config, clock)
        users = store.load_users()
        st._add_users(users)
        if side is not None:
            st.set_side(side)
        if user_vec is not None:
            st.user_vec = user_vec
            st.post_vec = np.zeros((16, user_vec.shape[1]), np.float32)
        posts = store.load_posts()
        first_ts = float(posts["created_at"].min()) if len(posts["idx"]) else clock()
        st.t0 = first_ts
        st._add_posts(posts)
        src, dst, _ = store.load_edges("follows")
        for s, d in zip(src.tolist(), dst.tolist()):
            st.following[s].add(d)
        np.add.at(st.followers.a, dst, 1)
        for table, fwd in (("blocks", st.blocked), ("mutes", st.muted)):
            s_, d_, _ = store.load_edges(table)
            for s, d in zip(s_.tolist(), d_.tolist()):
                fwd.setdefault(s, set()).add(d)
                if table == "blocks":
                    st.blocked_by.setdefault(d, set()).add(s)
        st.muted_words = store.load_muted_words()
        st.prefs = store.load_prefs()
        for chunk in store.iter_events():
            st.apply_events(chunk, graph=False)
        return st

    def catch_up(self, store: SQLiteStore) -> int:
        """Apply events committed by other workers since ``last_seq`` (multi-worker deployments poll this)."""
        n = 0
        posts = store.load_posts(since_idx=self.n_posts)
        if len(posts["idx"]):
            self._add_posts(posts)
        for chunk in store.iter_events(since_seq=self.last_seq):
            self.apply_events(chunk)
            n += len(chunk["seq"])
        return n

    # ------------------------------------------------------------------ entities
    def _add_users(self, users: dict[str, Any]) -> None:
        for idx, uid, handle, interests in zip(users["idx"].tolist(), users["id"], users["handle"],
                                               users["interests"]):
            while len(self.user_ids) <= idx:
                self.user_ids.append(None)
                self.handles.append("")
                self.user_interests.append([])
                self.following.append(set())
            self.user_ids[idx] = uid
            self.user_index[uid] = idx
            self.handles[idx] = handle
            self.user_interests[idx] = [self.topic_id(t) for t in interests]
        n = len(self.user_ids)
        for g in (self.user_community, self.user_side, self.followers, self.user_events, self.user_topic):
            g.ensure(n)
        if len(users["idx"]):
            self.user_community.a[users["idx"]] = users["community"]

    def add_users_from_store(self, store: SQLiteStore, idxs: list[int]) -> None:
        """Load newly created users (the rows after the lowest new idx), not the whole table."""
        if idxs:
            self._add_users(store.load_users(since_idx=min(idxs) - 1))

    def _add_posts(self, posts: dict[str, Any]) -> None:
        idx = posts["idx"]
        if not len(idx):
            return
        n = int(idx.max()) + 1
        for g in (self.author, self.created, self.topic, self.is_reply, self.labelled, self.divisiveness,
                  self.text_len, self.counters, self.totals, self.trend, self.side_likes):
            g.ensure(n)
        while len(self.post_ids) < n:
            self.post_ids.append(None)
            self.text.append("")
            self.text_lower.append("")
            self.post_topics.append([])
            self.labels.append([])
        self.author.a[idx] = posts["author"]
        self.created.a[idx] = posts["created_at"]
        self.is_reply.a[idx] = posts["reply_to"] > 0
        div = posts["divisiveness"]
        self.divisiveness.a[idx] = np.where(np.isnan(div), 0.0, div)
        self.text_len.a[idx] = [len(t) for t in posts["text"]]
        for i, pid, text, topics, labels, a in zip(idx.tolist(), posts["id"], posts["text"], posts["topics"],
                                                   posts["labels"], posts["author"].tolist()):
            self.post_ids[i] = pid
            self.post_index[pid] = i
            self.text[i] = text
            self.text_lower[i] = text.lower()
            self.post_topics[i] = topics
            self.labels[i] = labels
            self.topic.a[i] = self.topic_id(topics[0]) if topics else -1
            if labels:
                self.labelled.a[i] = 2 if any(lb in DROP_LABELS for lb in labels) else 1
            self.author_posts.setdefault(a, []).append(i)
        self.n_posts = max(self.n_posts, n - 1)
        self.newest_ts = max(self.newest_ts, float(posts["created_at"].max()))
        if self.post_vec is not None and len(self.post_vec) < len(self.author.a):
            pv = np.zeros((len(self.author.a), self.post_vec.shape[1]), np.float32)
            pv[: len(self.post_vec)] = self.post_vec
            self.post_vec = pv

    def add_posts_from_store(self, store: SQLiteStore) -> None:
        self._add_posts(store.load_posts(since_idx=self.n_posts))

    def set_labels(self, labels: dict[int, list[str]]) -> None:
        """Install moderation labels for posts (drop labels remove them from every feed)."""
        for i, lbs in labels.items():
            self.labels[i] = lbs
            self.labelled.a[i] = (2 if any(lb in DROP_LABELS for lb in lbs) else 1) if lbs else 0

    def topic_id(self, name: str) -> int:
        name = name.lower()
        t = self.topic_index.get(name)
        if t is None:
            t = len(self.topic_names)
            self.topic_names.append(name)
            self.topic_index[name] = t
            self.user_topic.widen(t + 1)
        return t

    # ------------------------------------------------------------------ events
    def _rebase(self, t: float) -> None:
        """Move the decay origin forward so exponents stay bounded."""
        shift = t - self.t0
        self.counters.a *= math.exp(-self.lam_counter * shift)
        self.trend.a *= math.exp(-self.lam_trend * shift)
        self.user_topic.a *= math.exp(-self.lam_counter * shift)
        f = math.exp(-self.lam_aff * shift)
        for row in self.affinity.values():
            for a in row:
                row[a] *= f
        self.t0 = t

    def apply_events(self, ev: dict[str, np.ndarray], graph: bool = True) -> None:
        """Fold a batch of committed events (columns as from ``SQLiteStore.iter_events``) into the state."""
        n = len(ev["kind"])
        if n == 0:
            return
        ts = ev["ts"]
        tmax = float(ts.max())
        if self.t0 == 0.0:
            self.t0 = float(ts.min())
        if (tmax - self.t0) * max(self.lam_trend, self.lam_counter) > _REBASE_EXP:
            self._rebase(tmax)
        self.newest_ts = max(self.newest_ts, tmax)
        if "seq" in ev and len(ev["seq"]):
            self.last_seq = max(self.last_seq, int(ev["seq"].max()))
        kind = ev["kind"].astype(np.int64)
        user = ev["user"]
        post = ev["post"]
        np.add.at(self.user_events.a, user, 1)
        # --- per-post decayed counters
        has_post = post > 0
        kc = np.full(n, -1, np.int64)
        for k, c in _KIND_TO_COUNTER.items():
            kc[kind == int(k)] = c
        m = has_post & (kc >= 0)
        if m.any():
            p, c, t = post[m], kc[m], ts[m]
            np.add.at(self.counters.a, (p, c), np.exp(self.lam_counter * (t - self.t0)))
            np.add.at(self.totals.a, (p, c), 1)
            np.add.at(self.trend.a, p, TREND_WEIGHTS[c] * np.exp(self.lam_trend * (t - self.t0)))
            # topic affinity of the engaging user (positive engagement only)
            pos = np.isin(c, (C["like"], C["repost"], C["reply"], C["dwell"]))
            tp = self.topic.a[p[pos]]
            ok = tp >= 0
            np.add.at(self.user_topic.a, (user[m][pos][ok], tp[ok]),
                      np.exp(self.lam_counter * (t[pos][ok] - self.t0)))
        # --- bridging: likes by side
        like = has_post & (kind == int(EventKind.LIKE))
        if like.any():
            side = self.user_side.a[user[like]]
            np.add.at(self.side_likes.a, (post[like][side < -BRIDGE_SIDE_T], 0), 1.0)
            np.add.at(self.side_likes.a, (post[like][side > BRIDGE_SIDE_T], 1), 1.0)
            if self.post_vec is not None and self.user_vec is not None:
                uu = user[like]
                ok = uu < len(self.user_vec)
                np.add.at(self.post_vec, post[like][ok], self.user_vec[uu[ok]])
        # --- grouped updates of per-user sets and dicts (one Python step per user or pair, not per event)
        aff_w = self._aff_w[kind]
        authors = np.where(has_post, self.author.a[np.maximum(post, 0)], ev["target_user"])
        aff_m = (aff_w != 0) & (authors > 0)
        if aff_m.any():
            n_u = np.int64(len(self.user_ids) + 1)
            key = user[aff_m].astype(np.int64) * n_u + authors[aff_m]
            uniq, inv = np.unique(key, return_inverse=True)
            add = np.bincount(inv, weights=aff_w[aff_m] * np.exp(self.lam_aff * (ts[aff_m] - self.t0)))
            for k_, v in zip(uniq.tolist(), add.tolist()):
                row = self.affinity.setdefault(k_ // int(n_u), {})
                a = k_ % int(n_u)
                row[a] = row.get(a, 0.0) + v
        imp = (kind == _IMPRESSION) & has_post
        if imp.any():
            for u, ps in _groups(user[imp], post[imp]):
                self.seen.setdefault(u, set()).update(ps)
            req = ev.get("request_id")
            if req is not None:
                for i in np.flatnonzero(imp).tolist():
                    if req[i]:
                        self._session_add(str(req[i]), int(post[i]), float(ts[i]))
        recent = self.cfg.recent_actions_per_user
        for b, (k_, bank) in enumerate(((_LIKE, self.recent_likes), (_REPOST, self.recent_reposts))):
            m = (kind == k_) & has_post
            if m.any():
                for u, pairs in _groups(user[m], list(zip(post[m].tolist(), ts[m].tolist()))):
                    bank.setdefault(u, deque(maxlen=recent)).extend(pairs)
                    self._recent_np.pop((b, u), None)
        for i in np.flatnonzero(np.isin(kind, _RARE_KINDS)).tolist():
            k = int(kind[i])
            u = int(user[i])
            if k in _FEEDBACK:
                a = int(authors[i])
                if a > 0:
                    self.see_less.setdefault(u, {})[a] = float(ts[i])
            elif graph:
                self._apply_graph(k, u, int(ev["target_user"][i]))

    def _apply_graph(self, k: int, u: int, v: int) -> None:
        if v <= 0:
            return
        if k == _FOLLOW and v not in self.following[u]:
            self.following[u].add(v)
            self.followers.a[v] += 1
        elif k == _UNFOLLOW and v in self.following[u]:
            self.following[u].discard(v)
            self.followers.a[v] -= 1
        elif k == _BLOCK:
            self.blocked.setdefault(u, set()).add(v)
            self.blocked_by.setdefault(v, set()).add(u)
        elif k == _UNBLOCK:
            self.blocked.get(u, set()).discard(v)
            self.blocked_by.get(v, set()).discard(u)
        elif k == _MUTE:
            self.muted.setdefault(u, set()).add(v)
        elif k == _UNMUTE:
            self.muted.get(u, set()).discard(v)

    def _session_add(self, request_id: str, post: int, ts: float) -> None:
        sid = request_id.split(".", 1)[0].rsplit(":", 1)[-1]  # "<policy>:<session>.<page>"
        entry = self.sessions.get(sid)
        if entry is None:
            if len(self.sessions) > 10_000:
                self.expire_sessions(ts)
            entry = (ts, set())
            self.sessions[sid] = entry
        entry[1].add(post)

    def expire_sessions(self, now: float) -> None:
        ttl = self.cfg.session_ttl_s
        for sid in [s for s, (t, _) in self.sessions.items() if now - t > ttl]:
            del self.sessions[sid]

    def recent_actions(self, bank: int, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(posts, times) of a user's recent likes (bank 0) or reposts (bank 1) as numpy arrays, oldest first."""
        key = (bank, user)
        got = self._recent_np.get(key)
        if got is None:
            dq = (self.recent_likes if bank == 0 else self.recent_reposts).get(user)
            if dq:
                a = np.array(dq, dtype=np.float64)
                got = (a[:, 0].astype(np.int64), a[:, 1])
            else:
                got = (np.zeros(0, np.int64), np.zeros(0))
            self._recent_np[key] = got
        return got

    def follow_pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch row, followed account) for every account each user in ``users`` follows, row by row."""
        follows = [self.following[u] for u in users.tolist()]
        sizes = np.fromiter(map(len, follows), np.int64, len(follows))
        return (np.repeat(np.arange(len(users), dtype=np.int64), sizes),
                np.fromiter(chain.from_iterable(follows), np.int64, int(sizes.sum())))

    def forget_user(self, u: int) -> None:
        """Drop a user's derived state after a data-rights deletion."""
        for d in (self.affinity, self.see_less, self.seen, self.recent_likes, self.recent_reposts, self.muted,
                  self.blocked, self.muted_words, self.prefs):
            d.pop(u, None)
        self._recent_np.pop((0, u), None)
        self._recent_np.pop((1, u), None)
        for v in self.following[u]:
            self.followers.a[v] -= 1
        self.following[u] = set()
        self.user_topic.a[u] = 0.0
        self.user_events.a[u] = 0

    # ------------------------------------------------------------------ reads (vectorised)
    def decayed_counters(self, posts: np.ndarray, now: float) -> np.ndarray:
        """(n, len(COUNTERS)) decayed engagement counts of ``posts`` at time ``now``."""
        return self.counters.a[posts] * math.exp(-self.lam_counter * (now - self.t0))

    def trending_scores(self, posts: np.ndarray, now: float) -> np.ndarray:
        return self.trend.a[posts] * math.exp(-self.lam_trend * (now - self.t0))

    def user_topic_share(self, users: np.ndarray, topics: np.ndarray) -> np.ndarray:
        """Share of each user's (decayed) positive engagement that went to the given topic (+ onboarding prior)."""
        uu, inv = np.unique(users, return_inverse=True)
        tot = self.user_topic.a[uu].sum(axis=1)[inv]  # row sums per distinct user, not per pair
        safe = np.where(topics >= 0, topics, 0)
        val = self.user_topic.a[users, safe]
        share = np.where(topics >= 0, val / np.maximum(tot, 1e-9), 0.0)
        picked = [self.user_interests[u] for u in uu.tolist()]  # onboarding topics of each distinct user
        sizes = np.fromiter(map(len, picked), np.int64, len(picked))
        flat = np.fromiter(chain.from_iterable(picked), np.int64, int(sizes.sum()))
        chose = np.zeros((len(uu), max(int(flat.max(initial=0)), int(safe.max(initial=0))) + 1), bool)
        chose[np.repeat(np.arange(len(uu)), sizes), flat] = True
        prior = (chose[inv, safe] & (topics >= 0)).astype(np.float64)
        w = 1.0 / (1.0 + tot)  # onboarding interests matter until the user has engaged
        return (1 - w) * share + w * prior

    def bridging_scores(self, posts: np.ndarray) -> np.ndarray:
        """Community-Notes-style bridging: smoothed share of likes from the weaker side, in [0, 0.5]."""
        s = self.side_likes.a[posts]
        return s.min(axis=1) / (s.sum(axis=1) + BRIDGE_PRIOR)

    def set_side(self, side: np.ndarray) -> None:
        """Install learned user factors (bridging sides) and recount likes per side."""
        self.user_side.ensure(len(side))
        self.user_side.a[: len(side)] = side

    @property
    def n_users(self) -> int:
        return len(self.user_ids) - 1


DROP_LABELS = frozenset({"drop", "illegal", "csam", "spam-removed", "removed"})
BRIDGE_SIDE_T = 0.15
BRIDGE_PRIOR = 5.0
_IMPRESSION = int(EventKind.IMPRESSION)
_LIKE = int(EventKind.LIKE)
_REPOST = int(EventKind.REPOST)
_FOLLOW = int(EventKind.FOLLOW)
_UNFOLLOW = int(EventKind.UNFOLLOW)
_BLOCK = int(EventKind.BLOCK)
_UNBLOCK = int(EventKind.UNBLOCK)
_MUTE = int(EventKind.MUTE)
_UNMUTE = int(EventKind.UNMUTE)
_FEEDBACK = frozenset({int(EventKind.SEE_LESS), int(EventKind.NOT_INTERESTED)})
_GRAPH = frozenset({_FOLLOW, _UNFOLLOW, _BLOCK, _UNBLOCK, _MUTE, _UNMUTE})
_RARE_KINDS = np.array([*_FEEDBACK, *_GRAPH])


def lookup_pairs(table: dict[int, dict[int, float]], users: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """table[user][key] per pair (0 when absent): the batch's users' rows become one sorted array of
    (user, key) codes, and every pair is found by a single binary search."""
    out = np.zeros(len(users))
    if not table or not len(users):
        return out
    rows = [(u, r) for u in np.unique(users).tolist() if (r := table.get(u))]
    if not rows:
        return out
    sizes = np.fromiter((len(r) for _, r in rows), np.int64, len(rows))
    n = int(sizes.sum())
    owner = np.repeat(np.fromiter((u for u, _ in rows), np.int64, len(rows)), sizes)
    code = (owner << 32) | np.fromiter(chain.from_iterable(r.keys() for _, r in rows), np.int64, n)
    val = np.fromiter(chain.from_iterable(r.values() for _, r in rows), np.float64, n)
    order = np.argsort(code)
    code, val = code[order], val[order]
    want = (users.astype(np.int64) << 32) | keys.astype(np.int64)
    at = np.minimum(np.searchsorted(code, want), n - 1)
    hit = code[at] == want
    out[hit] = val[at[hit]]
    return out


def group_by_user(users: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """[(user, positions)] for each distinct user in ``users`` (pairs are usually grouped by user)."""
    if len(users) and (users == users[0]).all():
        return [(int(users[0]), np.arange(len(users)))]
    order = np.argsort(users, kind="stable")
    u = users[order]
    cut = np.flatnonzero(u[1:] != u[:-1]) + 1
    return [(int(g[0]), idx) for g, idx in zip(np.split(u, cut), np.split(order, cut))]


def _groups(keys: np.ndarray, values) -> list[tuple[int, list]]:
    """[(key, [values in original order])] for each distinct key (stable grouping)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1, len(k)]
    if isinstance(values, np.ndarray):
        v = values[order].tolist()
    else:
        v = [values[i] for i in order.tolist()]
    return [(int(k[a]), v[a:b]) for a, b in zip(starts[:-1], starts[1:])]
