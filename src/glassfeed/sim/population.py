"""Latent users, posts and the follow graph of a synthetic society, plus ``respond``: how a batch of
users reacts to the pages a feed serves them. Shared by ``glassfeed generate`` and the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.sim import behaviour as bm
from glassfeed.sim.behaviour import BehaviourParams

TOPICS: list[str] = [
    "politics",
    "news",
    "sports",
    "music",
    "science",
    "gaming",
    "food",
    "movies",
    "tech",
    "art",
    "books",
    "travel",
    "fashion",
    "fitness",
    "finance",
    "climate",
    "health",
    "pets",
    "comedy",
    "education",
]
#: How divisive a post on each topic tends to be (scaled up by the author's extremity).
TOPIC_DIVISIVENESS: np.ndarray = np.array(
    [
        0.60,
        0.42,
        0.12,
        0.05,
        0.12,
        0.08,
        0.04,
        0.06,
        0.12,
        0.05,
        0.05,
        0.03,
        0.06,
        0.05,
        0.18,
        0.38,
        0.22,
        0.02,
        0.10,
        0.14,
    ],
    dtype=np.float64,
)
POLITICAL_TOPICS: tuple[int, ...] = (0, 1, 15)


@dataclass
class PopulationParams:
    """How users are drawn: communities, leanings, interests, activity and posting rates."""

    n_communities: int = 8
    community_leaning_span: float = 0.75  # community centres spread evenly over [-span, span]
    leaning_noise: float = 0.25
    community_topic_alpha: float = 0.3  # Dirichlet concentration of each community's topic profile
    user_topic_concentration: float = 12.0  # how closely users follow their community's profile
    politics_extremity_boost: float = 0.25  # extra interest in political topics per unit |leaning|
    activity_mean: float = 0.5  # sessions per day (lognormal, heavy tailed)
    activity_sigma: float = 1.0
    activity_max: float = 12.0
    post_rate_mean: float = 0.45  # original posts per day (lognormal, heavy tailed)
    post_rate_sigma: float = 1.1
    post_rate_max: float = 25.0
    time_budget_s: float = 45.0  # median seconds per session
    time_budget_sigma: float = 0.5
    account_age_days: tuple[float, float] = (30.0, 1500.0)


def _lognormal_with_mean(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    return rng.lognormal(np.log(mean) - 0.5 * sigma**2, sigma, n)


@dataclass
class Population:
    """Latent state of every user (rows indexed by user id); ``fatigue``, ``reward`` change over time."""

    interests: np.ndarray  # (n, n_topics) float32, rows sum to 1
    community: np.ndarray  # (n,) int16
    leaning: np.ndarray  # (n,) float32 in [-1, 1]
    activity: np.ndarray  # (n,) float32 expected sessions/day
    post_rate: np.ndarray  # (n,) float32 base original posts/day
    skill: np.ndarray  # (n,) float32 mean quality of the user's posts
    time_budget: np.ndarray  # (n,) float32 seconds per session
    created: np.ndarray  # (n,) float64 epoch seconds
    fatigue: np.ndarray  # (n,) float32 in [0, 1]
    last_active: np.ndarray  # (n,) float64 epoch seconds
    reward: np.ndarray  # (n,) float64 decayed engagement received as an author
    reward_ts: float = 0.0
    topics: list[str] = field(default_factory=lambda: list(TOPICS))

    @property
    def n_users(self) -> int:
        return len(self.community)

    @classmethod
    def sample(
        cls,
        n_users: int,
        rng: np.random.Generator,
        params: PopulationParams | None = None,
        start_ts: float = 0.0,
        n_topics: int = len(TOPICS),
    ) -> Population:
        """Draw ``n_users`` users: community -> leaning and topic profile -> individual interests."""
        p = params or PopulationParams()
        c = p.n_communities
        community = rng.integers(0, c, n_users).astype(np.int16)
        centres = np.linspace(-p.community_leaning_span, p.community_leaning_span, c)
        leaning = np.clip(centres[community] + p.leaning_noise * rng.standard_normal(n_users), -1, 1)
        profiles = rng.dirichlet(np.full(n_topics, p.community_topic_alpha), c)
        base = profiles[community]
        pol = [t for t in POLITICAL_TOPICS if t < n_topics]
        base[:, pol] += p.politics_extremity_boost * np.abs(leaning)[:, None] / max(len(pol), 1)
        base /= base.sum(1, keepdims=True)
        # Dirichlet around the community profile, via normalised gammas (vectorised)
        g = rng.standard_gamma(p.user_topic_concentration * base + 0.02)
        interests = (g / np.maximum(g.sum(1, keepdims=True), 1e-12)).astype(np.float32)
        interests /= interests.sum(1, keepdims=True)
        activity = np.minimum(_lognormal_with_mean(rng, p.activity_mean, p.activity_sigma, n_users), p.activity_max)
        # prolific posters are also somewhat more active readers
        z = 0.5 * np.log(activity / p.activity_mean) / p.activity_sigma + np.sqrt(0.75) * rng.standard_normal(n_users)
        post_rate = np.minimum(
            p.post_rate_mean * np.exp(p.post_rate_sigma * z - 0.5 * p.post_rate_sigma**2), p.post_rate_max
        )
        skill = rng.beta(2.5, 2.5, n_users)
        budget = _lognormal_with_mean(rng, p.time_budget_s, p.time_budget_sigma, n_users)
        lo, hi = p.account_age_days
        created = start_ts - rng.uniform(lo, hi, n_users) * 86400.0
        return cls(
            interests=interests,
            community=community,
            leaning=leaning.astype(np.float32),
            activity=activity.astype(np.float32),
            post_rate=post_rate.astype(np.float32),
            skill=skill.astype(np.float32),
            time_budget=budget.astype(np.float32),
            created=created,
            fatigue=np.zeros(n_users, np.float32),
            last_active=np.full(n_users, start_ts),
            reward=np.zeros(n_users),
            reward_ts=start_ts,
            topics=list(TOPICS[:n_topics]),
        )

    def match(self, users: np.ndarray, topics: np.ndarray) -> np.ndarray:
        """Interest of ``users`` in ``topics`` relative to each user's favourite topic, in [0, 1]."""
        top = self.interests.max(1)
        return self.interests[users, topics] / top[users]

    def recover(self, users: np.ndarray, t: float | np.ndarray, params: BehaviourParams | None = None) -> np.ndarray:
        """Let fatigue decay since each user's last activity; returns the current fatigue of ``users``."""
        f = bm.fatigue_recovered(self.fatigue[users], np.asarray(t) - self.last_active[users], params)
        self.fatigue[users] = f
        return f

    def _decay_reward(self, t: float, params: BehaviourParams | None) -> None:
        p = params or BehaviourParams()
        if t > self.reward_ts:
            self.reward *= 0.5 ** ((t - self.reward_ts) / p.reward_half_life_s)
            self.reward_ts = t

    def reward_authors(
        self, authors: np.ndarray, amounts: float | np.ndarray, t: float, params: BehaviourParams | None = None
    ) -> None:
        """Hook: credit authors with engagement received at time ``t`` (raises their posting rate)."""
        self._decay_reward(t, params)
        w = np.broadcast_to(np.asarray(amounts, dtype=np.float64), np.shape(authors))
        self.reward += np.bincount(authors, weights=w, minlength=self.n_users)

    def posting_rates(self, t: float, params: BehaviourParams | None = None) -> np.ndarray:
        """Expected original posts/day of every user at ``t``: base rate times the reward multiplier."""
        self._decay_reward(t, params)
        return self.post_rate * bm.posting_multiplier(self.reward, params)


class PostTable:
    """Growable columnar post features (author, created, topic, quality, divisiveness, reply_to)."""

    _cols = (
        ("author", np.int32),
        ("created", np.float64),
        ("topic", np.int16),
        ("quality", np.float32),
        ("divisiveness", np.float32),
        ("reply_to", np.int32),
    )

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self._data = {name: np.empty(capacity, dtype) for name, dtype in self._cols}

    def __len__(self) -> int:
        return self.n

    @classmethod
    def from_arrays(
        cls,
        author: np.ndarray,
        created: np.ndarray,
        topic: np.ndarray,
        quality: np.ndarray,
        divisiveness: np.ndarray,
        reply_to: np.ndarray | None = None,
    ) -> PostTable:
        """Wrap existing post columns (e.g. a ``SyntheticNetwork``'s) for ``respond`` or further growth."""
        table = cls(capacity=max(1024, len(author)))
        table.add(author, created, topic, quality, divisiveness, reply_to)
        return table

    def add(
        self,
        author: np.ndarray,
        created: np.ndarray,
        topic: np.ndarray,
        quality: np.ndarray,
        divisiveness: np.ndarray,
        reply_to: np.ndarray | None = None,
    ) -> np.ndarray:
        """Append posts; returns their indices."""
        k = len(author)
        if reply_to is None:
            reply_to = np.full(k, -1, np.int32)
        need = self.n + k
        if need > len(self._data["author"]):
            cap = max(need, 2 * len(self._data["author"]))
            for name, arr in self._data.items():
                grown = np.empty(cap, arr.dtype)
                grown[: self.n] = arr[: self.n]
                self._data[name] = grown
        for (name, _), vals in zip(self._cols, (author, created, topic, quality, divisiveness, reply_to)):
            self._data[name][self.n : need] = vals
        idx = np.arange(self.n, need, dtype=np.int64)
        self.n = need
        return idx

    def __getattr__(self, name: str) -> np.ndarray:
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return data[name][: self.n]
        raise AttributeError(name)


def sample_post_features(
    pop: Population, authors: np.ndarray, rng: np.random.Generator, topic_sharpness: float = 1.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Topic (from the author's interests), quality (author skill) and divisiveness for new posts.

    Divisiveness is high for political topics and for authors with extreme leanings.
    """
    k = len(authors)
    if k == 0:
        return np.empty(0, np.int16), np.empty(0, np.float32), np.empty(0, np.float32)
    w = pop.interests[authors].astype(np.float64) ** topic_sharpness
    cum = np.cumsum(w, 1)
    u = rng.random(k) * cum[:, -1]
    topic = np.minimum((cum < u[:, None]).sum(1), w.shape[1] - 1)
    ext = np.abs(pop.leaning[authors]).astype(np.float64)
    tdiv = TOPIC_DIVISIVENESS[topic % len(TOPIC_DIVISIVENESS)]
    div = np.clip(tdiv * (0.4 + 1.2 * ext) + 0.12 * ext**2 + 0.08 * rng.standard_normal(k), 0, 1)
    quality = np.clip(pop.skill[authors] + 0.15 * rng.standard_normal(k) - 0.15 * div, 0, 1)
    return topic.astype(np.int16), quality.astype(np.float32), div.astype(np.float32)


def sample_new_posts(
    pop: Population, t0: float, duration_s: float, rng: np.random.Generator, params: BehaviourParams | None = None
) -> tuple[np.ndarray, ...]:
    """Original posts made in [t0, t0 + duration_s): Poisson counts at each user's (reward-boosted)
    posting rate. Returns (author, created, topic, quality, divisiveness) ready for ``PostTable.add``."""
    rates = pop.posting_rates(t0, params) * (duration_s / 86400.0)
    authors = np.repeat(np.arange(pop.n_users, dtype=np.int32), rng.poisson(rates))
    created = t0 + rng.random(len(authors)) * duration_s
    return (authors, created, *sample_post_features(pop, authors, rng))


def sample_reply_posts(
    pop: Population,
    posts: PostTable,
    repliers: np.ndarray,
    parents: np.ndarray,
    ts: np.ndarray,
    rng: np.random.Generator,
    noise: float = 0.1,
) -> tuple[np.ndarray, ...]:
    """Reply posts for REPLY events: same topic as the parent, divisiveness inherited (and raised by
    extreme repliers). Returns (author, created, topic, quality, divisiveness, reply_to)."""
    k = len(parents)
    ext = np.abs(pop.leaning[repliers]).astype(np.float64)
    div = np.clip(0.8 * posts.divisiveness[parents] + 0.15 * ext + noise * rng.standard_normal(k), 0, 1)
    quality = np.clip(pop.skill[repliers] + 0.15 * rng.standard_normal(k) - 0.15 * div, 0, 1)
    return (
        np.asarray(repliers, np.int32),
        ts,
        posts.topic[parents].copy(),
        quality.astype(np.float32),
        div.astype(np.float32),
        np.asarray(parents, np.int32),
    )


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` for int keys via sort (numpy 2's hash-based unique is much slower here)."""
    a = np.sort(a)
    if len(a) < 2:
        return a
    return a[np.concatenate([[True], a[1:] != a[:-1]])]


def sample_follow_graph(
    pop: Population,
    rng: np.random.Generator,
    mean_following: float = 40.0,
    homophily: float = 0.8,
    rounds: int = 6,
    candidates: int = 2,
    fitness_alpha: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Follow edges (src follows dst) with community homophily and preferential attachment.

    Edges arrive in ``rounds``; each picks targets with probability proportional to
    (followers so far + fitness), within the source's community with probability ``homophily``;
    among ``candidates`` draws the one closest in interests wins (interest homophily).
    """
    n = pop.n_users
    if n < 2:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    out_deg = np.minimum(rng.lognormal(np.log(mean_following) - 0.5, 1.0, n), n - 1)
    out_deg = np.maximum(np.round(out_deg), 1).astype(np.int64)
    fitness = (rng.pareto(fitness_alpha, n) + 1.0) * (0.5 + pop.post_rate / max(pop.post_rate.mean(), 1e-9))
    order = np.argsort(pop.community, kind="stable")
    comm_sorted = pop.community[order]
    n_comm = int(pop.community.max()) + 1
    seg_start = np.searchsorted(comm_sorted, np.arange(n_comm), "left")
    seg_end = np.searchsorted(comm_sorted, np.arange(n_comm), "right")
    indeg = np.zeros(n)
    keys = np.empty(0, np.int64)
    src_all = np.repeat(np.arange(n), out_deg)
    rng.shuffle(src_all)
    for chunk in np.array_split(src_all, rounds):
        w = indeg + fitness
        cum = np.cumsum(w[order])
        m = len(chunk)
        c = pop.community[chunk]
        within = rng.random(m) < homophily
        lo = np.where(within, seg_start[c], 0)
        hi = np.where(within, seg_end[c], n)
        base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        span = cum[hi - 1] - base
        best = np.empty(m, np.int64)
        best_sim = np.full(m, -np.inf)
        for _ in range(candidates):
            pos = np.searchsorted(cum, base + rng.random(m) * span, "right")
            cand = order[np.clip(pos, lo, hi - 1)]
            sim = np.einsum("ij,ij->i", pop.interests[chunk], pop.interests[cand])
            better = sim > best_sim
            best[better], best_sim[better] = cand[better], sim[better]
        ok = best != chunk
        merged = sorted_unique(np.concatenate([keys, chunk[ok].astype(np.int64) * n + best[ok]]))
        indeg = np.bincount(merged % n, minlength=n).astype(np.float64)
        keys = merged
    return (keys // n).astype(np.int32), (keys % n).astype(np.int32)


def author_affinity(pop: Population, users: np.ndarray, authors: np.ndarray, following: np.ndarray) -> np.ndarray:
    """Tie strength in [0, 1]: following the author counts most, a shared community a little."""
    same = pop.community[users] == pop.community[authors]
    return 0.75 * following + 0.25 * same


@dataclass
class Response:
    """What a batch of users did with their pages: the events (sorted by ts; users and posts in the
    simulation's own index space, ``seq`` unset) plus per-user and per-slot outcomes. Per-slot arrays have
    the page shape; ``satisfaction``/``regret`` are means over scanned items (NaN when nothing was
    scanned)."""

    events: EventBatch
    time_spent: np.ndarray  # (n_users_active,) seconds
    n_seen: np.ndarray  # (n_users_active,) items scanned
    satisfaction: np.ndarray  # (n_users_active,)
    regret: np.ndarray  # (n_users_active,)
    examined: np.ndarray  # (n_users_active, page_len) bool
    clicked: np.ndarray
    item_satisfaction: np.ndarray  # NaN where not scanned
    item_regret: np.ndarray


def respond(
    pages: np.ndarray,
    users: np.ndarray,
    t: float | np.ndarray,
    rng: np.random.Generator,
    pop: Population,
    posts: PostTable,
    params: BehaviourParams | None = None,
    following: np.ndarray | None = None,
    affinity: np.ndarray | None = None,
    follow_prob: float = 0.08,
    update: bool = True,
) -> Response:
    """Sample each user's actions on their page with a cascade model.

    Users scan down from slot 0; each scanned item costs scan time plus dwell if clicked, and the
    scan stops when the session budget (time budget x (1 - fatigue)) runs out or the per-item quit
    hazard (rising with fatigue) fires. ``pages`` is (n, page_len) post indices, -1 for empty slots;
    ``posts`` a ``PostTable`` (see ``PostTable.from_arrays``); ``users`` must be distinct; ``t`` is
    the session start (scalar or per user). ``following`` marks slots whose author the user follows
    (used for affinity and for FOLLOW events after a like or repost of an unfollowed author). With
    ``update`` the users' fatigue and last-active time change. With ``params.position_effect`` a scanned item at
    slot k is also read only with probability ``attention ** k`` (``behaviour.examine_prob``), so engagement per
    logged impression falls with the slot.
    """
    p = params or BehaviourParams()
    pages = np.asarray(pages)
    users = np.asarray(users, dtype=np.int64)
    s, L = pages.shape
    t0 = np.broadcast_to(np.asarray(t, dtype=np.float64), (s,))
    valid = pages >= 0
    pp = np.where(valid, pages, 0)
    uu = np.broadcast_to(users[:, None], (s, L))
    authors = posts.author[pp]
    if following is None:
        following = np.zeros((s, L), bool)
    if affinity is None:
        affinity = author_affinity(pop, uu, authors, following)
    f0 = pop.recover(users, t0, p) if update else pop.fatigue[users].astype(np.float64)
    seen_before: np.ndarray = np.cumsum(valid, 1) - valid
    fat = bm.fatigue_after(f0[:, None], seen_before, 0.0, p)
    match = pop.match(uu, posts.topic[pp].astype(np.int64))
    quality = posts.quality[pp].astype(np.float64)
    div = posts.divisiveness[pp].astype(np.float64)
    align = pop.leaning[uu].astype(np.float64) * pop.leaning[authors]
    slot = np.broadcast_to(np.arange(L), (s, L)) if p.position_effect else None
    pr = bm.engagement_probs(match, quality, div, affinity, align, fat, slot, p)
    r = rng.random((8, s, L))
    click = valid & (r[0] < pr.click)
    dwell_s = np.where(click, bm.sample_dwell_s(pr, rng), 0.0)
    scan = p.scan_s * np.exp(0.3 * rng.standard_normal((s, L)))
    cost = np.where(valid, scan + dwell_s, 0.0)
    before = np.cumsum(cost, 1) - cost
    budget = pop.time_budget[users] * (1.0 - f0) * np.exp(0.3 * rng.standard_normal(s))
    quit_ = valid & (r[1] < p.quit_hazard + p.quit_fatigue * fat)
    alive = (np.cumsum(quit_, 1) - quit_) == 0
    ex = valid & alive & (before < budget[:, None])
    click &= ex
    neg = ex & (r[2] < pr.see_less)
    report = ex & (r[3] < pr.report)
    like = ex & ~neg & ~report & (r[4] < pr.like)
    repost = ex & ~neg & ~report & (r[5] < pr.repost)
    reply = ex & ~report & (r[6] < pr.reply)
    follow = (like | repost) & ~following & (r[7] < follow_prob)
    not_int = neg & (rng.random((s, L)) < p.not_interested_share)
    t_item = t0[:, None] + before
    t_act = t_item + 0.8 * scan + dwell_s
    cols: list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None, bool]] = [
        (ex, EventKind.IMPRESSION, t_item, None, False),
        (click, EventKind.CLICK, t_item + 0.6 * scan, None, False),
        (click, EventKind.DWELL, t_item + 0.6 * scan + dwell_s, 1000.0 * dwell_s, False),
        (like, EventKind.LIKE, t_act, None, False),
        (repost, EventKind.REPOST, t_act + 0.5, None, False),
        (reply, EventKind.REPLY, t_act + 20.0, None, False),
        (neg & ~not_int, EventKind.SEE_LESS, t_act, None, False),
        (not_int, EventKind.NOT_INTERESTED, t_act, None, False),
        (report, EventKind.REPORT, t_act + 1.0, None, False),
        (follow, EventKind.FOLLOW, t_act + 1.5, None, True),
    ]
    parts = []
    for mask, kind, ts, value, user_target in cols:
        i, j = np.nonzero(mask)
        k = len(i)
        parts.append(
            EventBatch.from_columns(
                kind=np.full(k, int(kind), np.int8),
                user=users[i],
                post=None if user_target else pp[i, j],
                target_user=authors[i, j] if user_target else None,
                ts=ts[i, j],
                value=None if value is None else value[i, j].astype(np.float32),  # ms, float32 precision
                position=None if user_target else j,
            )
        )
    ev = EventBatch.concat(parts)
    ev = ev.take(np.argsort(ev.ts, kind="stable"))
    n_seen = ex.sum(1)
    time_spent = (cost * ex).sum(1)
    sat, reg = bm.stated_satisfaction(match, quality, div, fat, p)
    item_sat = np.where(ex, sat, np.nan)
    item_reg = np.where(ex, reg, np.nan)
    denom = np.maximum(n_seen, 1)
    mean_sat = np.where(n_seen > 0, np.where(ex, sat, 0).sum(1) / denom, np.nan)
    mean_reg = np.where(n_seen > 0, np.where(ex, reg, 0).sum(1) / denom, np.nan)
    if update:
        pop.fatigue[users] = bm.fatigue_after(f0, n_seen, (div * ex).sum(1), p)
        pop.last_active[users] = t0 + time_spent
    return Response(
        ev,
        time_spent=time_spent,
        n_seen=n_seen,
        satisfaction=mean_sat,
        regret=mean_reg,
        examined=ex,
        clicked=click,
        item_satisfaction=item_sat,
        item_regret=item_reg,
    )
