"""``glassfeed generate``: a synthetic society and its browsing history, as columnar numpy arrays.

Users with latent interests, communities and leanings follow each other (homophily + preferential
attachment), post (more when rewarded with engagement), reply, and browse a simple historical feed
(followed authors' recent posts + globally popular + a few fresh ones) in 6-hour slots, reacting
through the shared behaviour model (``sim/behaviour.py``) via ``population.respond``.

The latent population of ``generate_network(n, d, seed, params)`` (including hidden state such as
skill, posting rate and time budget) is exactly
``Population.sample(n, np.random.default_rng(seed), params.population, params.start_ts)``, so a
simulator can continue with the same society.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.sim.behaviour import BehaviourParams
from glassfeed.sim.population import (
    Population,
    PopulationParams,
    PostTable,
    respond,
    sample_follow_graph,
    sample_new_posts,
    sample_reply_posts,
    sorted_unique,
)
from glassfeed.sim.text import render_posts

DEFAULT_START_TS = 1767225600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0


@dataclass
class GeneratorParams:
    """Knobs of the generated society and of the historical feed its users browsed."""

    population: PopulationParams = field(default_factory=PopulationParams)
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)
    start_ts: float = DEFAULT_START_TS
    slots_per_day: int = 4  # browsing/posting is simulated in slots; a slot sees posts made before it
    page_len: int = 20
    follow_tries: int = 24  # draws of (followee, recent post) per page
    popular_per_page: int = 8
    fresh_per_page: int = 4
    popular_pool: int = 300  # top-K recent posts by engagement
    pool_window_s: float = 2 * DAY  # the feed shows posts younger than this
    mean_following: float = 40.0
    homophily: float = 0.8
    follow_history_days: float = 365.0  # initial follows were created up to this long before start
    follow_prob: float = 0.08  # P(follow author | like or repost of an unfollowed author)
    reply_noise: float = 0.1
    engagement_weights: dict[int, float] = field(
        default_factory=lambda: {
            int(EventKind.CLICK): 0.2,
            int(EventKind.LIKE): 1.0,
            int(EventKind.REPOST): 2.0,
            int(EventKind.REPLY): 3.0,
        }
    )


@dataclass
class SyntheticNetwork:
    """Columnar output of :func:`generate_network` (see the module doc for the meaning of each column)."""

    start_ts: float
    days: int
    seed: int
    topics: list[str]
    user_interests: np.ndarray
    user_community: np.ndarray
    user_leaning: np.ndarray
    user_activity: np.ndarray
    user_created: np.ndarray
    post_author: np.ndarray
    post_created: np.ndarray
    post_topic: np.ndarray
    post_quality: np.ndarray
    post_divisiveness: np.ndarray
    post_reply_to: np.ndarray
    post_text: list[str]
    follow_src: np.ndarray
    follow_dst: np.ndarray
    follow_created: np.ndarray
    events: EventBatch  # the browsing history, by ts; users and posts are the network's indexes (from 0)

    @property
    def n_users(self) -> int:
        return len(self.user_community)

    @property
    def n_posts(self) -> int:
        return len(self.post_author)

    @property
    def n_events(self) -> int:
        return len(self.events)


class _Graph:
    """Follow edges as sorted keys (src * n + dst) plus a CSR view of each user's followees."""

    def __init__(self, n: int, src: np.ndarray, dst: np.ndarray):
        self.n = n
        self.keys = sorted_unique(src.astype(np.int64) * n + dst)
        self._csr()

    def _csr(self) -> None:
        src = self.keys // self.n
        self.indices = (self.keys % self.n).astype(np.int64)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=self.n))])

    def add(self, src: np.ndarray, dst: np.ndarray) -> None:
        if len(src):
            self.keys = sorted_unique(np.concatenate([self.keys, src.astype(np.int64) * self.n + dst]))
            self._csr()

    def contains(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        key = src.astype(np.int64) * self.n + dst
        pos = np.minimum(np.searchsorted(self.keys, key), max(len(self.keys) - 1, 0))
        return (self.keys[pos] == key) if len(self.keys) else np.zeros(key.shape, bool)


def _build_pages(
    rng: np.random.Generator,
    users: np.ndarray,
    pool: np.ndarray,
    posts: PostTable,
    post_eng: np.ndarray,
    graph: _Graph,
    t: float,
    gp: GeneratorParams,
) -> np.ndarray:
    """A page per user: followed authors' recent posts + popular + fresh, de-duplicated, own posts removed."""
    s, n = len(users), graph.n
    if len(pool) == 0:
        return np.full((s, gp.page_len), -1, np.int64)
    pool_auth = posts.author[pool]
    by_author = pool[np.argsort(pool_auth, kind="stable")]
    cnt = np.bincount(pool_auth, minlength=n)
    first = np.cumsum(cnt) - cnt
    deg = graph.indptr[users + 1] - graph.indptr[users]
    fi = graph.indptr[users][:, None] + (rng.random((s, gp.follow_tries)) * deg[:, None]).astype(np.int64)
    has = deg[:, None] > 0
    followee = np.where(has, graph.indices[np.minimum(fi, max(len(graph.indices) - 1, 0))], 0)
    c = cnt[followee]
    pick = first[followee] + (rng.random(followee.shape) * c).astype(np.int64)
    followed = np.where(has & (c > 0), by_author[np.minimum(pick, len(by_author) - 1)], -1)
    score = post_eng[pool] + 0.5 * posts.quality[pool]
    k = min(gp.popular_pool, len(pool))
    top = pool[np.argpartition(-score, k - 1)[:k]]
    popular = top[rng.integers(0, k, (s, gp.popular_per_page))]
    fresh = pool[rng.integers(0, len(pool), (s, gp.fresh_per_page))]
    cand = np.sort(np.concatenate([followed, popular, fresh], 1), 1)
    dup = np.zeros(cand.shape, bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
    cand[dup] = -1
    cp = np.maximum(cand, 0)
    cand[(posts.author[cp] == users[:, None])] = -1
    follows = graph.contains(np.broadcast_to(users[:, None], cand.shape), posts.author[cp])
    age_days = (t - posts.created[cp]) / DAY
    rank = 1.0 * follows + 0.4 * np.log1p(post_eng[cp]) - age_days + rng.gumbel(size=cand.shape)
    rank[cand < 0] = -np.inf
    order = np.argsort(-rank, 1, kind="stable")[:, : gp.page_len]
    pages = np.take_along_axis(cand, order, 1)
    return pages


def generate_network(
    n_users: int,
    days: int,
    seed: int,
    params: GeneratorParams | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> SyntheticNetwork:
    """Generate ``n_users`` users browsing for ``days`` days; deterministic for a given ``seed``."""
    gp = params or GeneratorParams()
    bp = gp.behaviour
    rng = np.random.default_rng(seed)
    say = progress or (lambda stage, frac: None)
    start = float(gp.start_ts)
    slot_len = DAY / gp.slots_per_day
    end = start + days * DAY

    say("population", 0.0)
    pop = Population.sample(n_users, rng, gp.population, start)
    src, dst = sample_follow_graph(pop, rng, gp.mean_following, gp.homophily)
    earliest = np.maximum(np.maximum(pop.created[src], pop.created[dst]), start - gp.follow_history_days * DAY)
    f_created = earliest + rng.random(len(src)) * (start - earliest)
    graph = _Graph(n_users, src, dst)

    posts = PostTable(capacity=max(1024, int(n_users * (days + 2) * 0.8)))
    post_eng = np.zeros(max(1024, int(n_users * (days + 2) * 0.8)))
    ev_parts: list[EventBatch] = []
    slot_first: list[int] = []
    pre_slots = int(np.ceil(gp.pool_window_s / slot_len))
    total_slots = days * gp.slots_per_day
    pending_src: list[np.ndarray] = []
    pending_dst: list[np.ndarray] = []
    w_eng = np.zeros(32)
    for kind, w in gp.engagement_weights.items():
        w_eng[kind] = w

    for k in range(-pre_slots, total_slots):
        t0 = start + k * slot_len
        slot_first.append(posts.n)
        if k >= 0:
            lo = slot_first[max(0, len(slot_first) - pre_slots - 2)]
            cand = np.arange(lo, posts.n)
            created = posts.created[lo:]
            pool = cand[(created < t0) & (created >= t0 - gp.pool_window_s)]
            active = np.nonzero(rng.random(n_users) < -np.expm1(-pop.activity / gp.slots_per_day))[0]
            if len(active) and len(pool):
                t_sess = t0 + rng.random(len(active)) * slot_len
                pages = _build_pages(rng, active, pool, posts, post_eng, graph, t0, gp)
                pp = np.maximum(pages, 0)
                following = graph.contains(np.broadcast_to(active[:, None], pages.shape), posts.author[pp])
                res = respond(
                    pages, active, t_sess, rng, pop, posts, bp, following=following, follow_prob=gp.follow_prob
                )
                # the history ends at start + days: a session begun late in the last slot stops there (what it
                # would do later has not happened yet, and a store's ingest refuses events from the future)
                ev = res.events
                ev = ev.take(np.flatnonzero(ev.ts < end))
                ev_parts.append(ev)
                # engagement credit: popularity and the author reward hook
                on_post = ev.post >= 0
                w = w_eng[ev.kind[on_post]]
                tgt = ev.post[on_post]
                post_eng += np.bincount(tgt, weights=w, minlength=len(post_eng))
                pop.reward_authors(posts.author[tgt], w, t0 + slot_len, bp)
                fol = ev.kind == EventKind.FOLLOW
                pending_src.append(ev.user[fol])
                pending_dst.append(ev.target_user[fol])
                # replies become posts
                rep = ev.kind == EventKind.REPLY
                if rep.any():
                    posts.add(
                        *sample_reply_posts(pop, posts, ev.user[rep], ev.post[rep], ev.ts[rep], rng, gp.reply_noise)
                    )
            if (k + 1) % gp.slots_per_day == 0 and pending_src:
                graph.add(np.concatenate(pending_src), np.concatenate(pending_dst))
                pending_src, pending_dst = [], []
            say("browsing", (k + 1) / total_slots)
        posts.add(*sample_new_posts(pop, t0, slot_len, rng, bp))
        if len(post_eng) < posts.n:  # engagement received per post, grown with the table
            post_eng = np.concatenate([post_eng, np.zeros(max(posts.n - len(post_eng), len(post_eng)))])

    say("finishing", 0.0)
    # posts: renumber in creation order (so reply_to always points to a smaller id)
    perm = np.argsort(posts.created, kind="stable")
    new_id = np.empty(posts.n, np.int64)
    new_id[perm] = np.arange(posts.n)
    p_author = posts.author[perm].copy()
    p_created = posts.created[perm].copy()
    p_topic = posts.topic[perm].copy()
    p_quality = posts.quality[perm].copy()
    p_div = posts.divisiveness[perm].copy()
    rt = posts.reply_to[perm]
    p_reply = np.where(rt >= 0, new_id[np.maximum(rt, 0)], -1).astype(np.int32)

    events = EventBatch.concat(ev_parts)
    events.post = np.where(events.post >= 0, new_id[np.maximum(events.post, 0)], -1)
    events = events.take(np.argsort(events.ts, kind="stable"))
    # at most one LIKE / REPOST per (user, post) and one FOLLOW per (user, target): keep the first
    keep = np.ones(len(events), bool)
    for k_ in (EventKind.LIKE, EventKind.REPOST, EventKind.FOLLOW):
        idx = np.nonzero(events.kind == k_)[0]
        tgt = events.target_user[idx] if k_ == EventKind.FOLLOW else events.post[idx]
        key = events.user[idx] * max(n_users, len(p_author), 1) + tgt
        _, first = np.unique(key, return_index=True)
        drop = np.ones(len(idx), bool)
        drop[first] = False
        keep[idx[drop]] = False
    events = events.take(keep)

    parent_author = np.where(p_reply >= 0, p_author[np.maximum(p_reply, 0)], -1)
    text = render_posts(pop.topics, p_topic, p_quality, p_div, pop.leaning[p_author], rng, parent_author)
    say("finishing", 1.0)
    return SyntheticNetwork(
        start_ts=start,
        days=days,
        seed=seed,
        topics=list(pop.topics),
        user_interests=pop.interests,
        user_community=pop.community,
        user_leaning=pop.leaning,
        user_activity=pop.activity,
        user_created=pop.created,
        post_author=p_author,
        post_created=p_created,
        post_topic=p_topic,
        post_quality=p_quality,
        post_divisiveness=p_div,
        post_reply_to=p_reply,
        post_text=text,
        follow_src=src,
        follow_dst=dst,
        follow_created=f_created,
        events=events,
    )
