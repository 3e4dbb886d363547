"""The simulator loop: a seeded synthetic society browses feeds ranked by the REAL glassfeed pipeline.

One shared history (``generate_network`` written through the Ingestor, models trained once) is copied into
one SQLite store per policy, so policies run side by side on the same population without interfering. Each
step (``step_hours``): new posts are created through the Ingestor; the step's active users (the same users in
every policy world: their draw uses a policy-independent random stream) are ranked in batches by
``feed.pipeline.rank``; they react through ``population.respond`` (the generator's behaviour model); their
events go back through ``Ingestor.ingest_batch`` with request ids and positions (the feedback loop), replies
become posts, authors are rewarded, leanings drift (``OpinionParams``); models retrain on a schedule.
Metrics per step are collected by :class:`Collector` (``sim/report.py`` turns them into HTML/JSON).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.audit import metrics as M
from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed import heads as feed_heads
from glassfeed.feed.explore import explored_items
from glassfeed.feed.pipeline import prepare, rank
from glassfeed.feed.service import FeedService
from glassfeed.feed.train import engagement_matrix, fit_als, fit_bridging_sides, train_all
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.settings import Settings, packaged_settings
from glassfeed.sim.behaviour import BehaviourParams, stated_satisfaction
from glassfeed.sim.generate import DAY, GeneratorParams, SyntheticNetwork, generate_network
from glassfeed.sim.population import (
    Population,
    PostTable,
    Response,
    respond,
    sample_new_posts,
    sample_reply_posts,
)
from glassfeed.sim.text import render_posts
from glassfeed.store import models_dir, open_store

Progress = Callable[[str, int, int], None]  # (stage, done, total)
#: Engagement credited to authors (posting-rate reward), as in the generator.
REWARD_WEIGHTS = {EventKind.CLICK: 0.2, EventKind.LIKE: 1.0, EventKind.REPOST: 2.0, EventKind.REPLY: 3.0}
ENGAGED = (EventKind.LIKE, EventKind.REPOST, EventKind.REPLY)
LEANING_GROUPS = ("left", "centre", "right")


@dataclass
class OpinionParams:
    """A small opinion-dynamics rule (the behaviour model has none): after each session a user's leaning moves
    ``assimilation`` x the mean gap to the authors they liked/reposted (Deffuant-style pull) and
    ``backfire`` x the mean divisiveness of out-group posts they scanned, away from the centre (Bail et al.
    2018: exposure to the other side's hostile content entrenches). Leanings stay in [-1, 1]."""

    assimilation: float = 0.02
    backfire: float = 0.02


@dataclass
class SimConfig:
    """Everything a simulation run depends on; the same config + seed gives the same results."""

    users: int = 2000
    steps: int = 50
    seed: int = 1
    policies: tuple[str, ...] = ("engagement", "chronological", "stated_preference", "bridging")
    active_prob: float = 0.2  # each user requests a feed with this probability per step
    step_hours: float = 6.0
    page_len: int = 20
    batch: int = 1000  # users per rank() call
    workers: int = 1  # processes ranking a step's batches in parallel (forked: they read the same state)
    history_days: int = 7
    retrain_every: int = 10  # steps between retrains (0 = never)
    retrain: str = "partial"  # "partial": ALS + bridging sides, state rebuilt; "full": train_all
    train_rows: int = 200_000
    divisive_threshold: float = 0.5
    divisive_top_k: int = 10  # Milli et al. compare the top 10 of each timeline
    homog_every: int = 5  # steps between homogenisation measurements
    homog_panel: int = 1000  # users in the homogenisation panel
    ideal_pool_hours: float = 24.0  # the ideal recommender picks from posts this recent
    opinion: OpinionParams = field(default_factory=OpinionParams)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["policies"] = list(self.policies)
        return d


# --------------------------------------------------------------------------- shared history


@dataclass
class Base:
    """The generated history written to ``db`` with models trained in ``models_dir(db)``."""

    db: Path
    net: SyntheticNetwork
    end_ts: float
    seconds: dict[str, float]


def prepare_base(
    cfg: SimConfig, folder: Path, progress: Progress | None = None, settings: Settings | None = None
) -> Base:
    """Generate ``cfg.users`` x ``cfg.history_days`` of history, write it through the Ingestor and train once
    (with the ``retrieval`` and ``state`` sections of ``settings``, default: the packaged ones)."""
    say = progress or (lambda s, d, t: None)
    settings = settings or packaged_settings()
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "base.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    shutil.rmtree(models_dir(db), ignore_errors=True)
    secs: dict[str, float] = {}
    t = time.perf_counter()
    net = generate_network(
        cfg.users, cfg.history_days, cfg.seed, progress=lambda s, f: say(f"history: {s}", int(f * 100), 100)
    )
    secs["generate"] = time.perf_counter() - t
    end = float(net.start_ts + cfg.history_days * DAY)
    store = open_store(db, synchronous="OFF")
    ing = Ingestor(store, settings.ingest, clock=lambda: end)
    t = time.perf_counter()
    write_network(net, ing, with_tokens=False, progress=lambda s, d, n: say(f"write: {s}", d, n))
    secs["write"] = time.perf_counter() - t
    t = time.perf_counter()
    say("train", 0, 1)
    train_all(store, models_dir(db), max_rows=cfg.train_rows, retrieval=settings.retrieval, state=settings.state)
    say("train", 1, 1)
    secs["train"] = time.perf_counter() - t
    store.close()
    return Base(db=db, net=net, end_ts=end, seconds=secs)


def copy_base(base: Base, dest: Path) -> Path:
    """A private copy of the base store and its models for one policy world."""
    for p in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(base.db, dest)
    shutil.rmtree(models_dir(dest), ignore_errors=True)
    shutil.copytree(models_dir(base.db), models_dir(dest))
    return dest


# --------------------------------------------------------------------------- small pure pieces


def page_matrix(row: np.ndarray, post: np.ndarray, n: int, page_len: int) -> np.ndarray:
    """(n, page_len) matrix of ``post`` ids laid out by ``row`` in their given order (-1 = empty slot)."""
    out = np.full((n, page_len), -1, np.int64)
    if not len(row):
        return out
    order = np.argsort(row, kind="stable")
    r = row[order]
    start = np.r_[0, np.flatnonzero(r[1:] != r[:-1]) + 1]
    slot = np.arange(len(r)) - np.repeat(start, np.diff(np.r_[start, len(r)]))
    ok = slot < page_len
    out[r[ok], slot[ok]] = post[order][ok]
    return out


def opinion_step(
    lean_user: np.ndarray,
    lean_author: np.ndarray,
    liked: np.ndarray,
    examined: np.ndarray,
    divisiveness: np.ndarray,
    p: OpinionParams,
) -> np.ndarray:
    """New leanings of users after a session (rows = users, columns = page slots); see ``OpinionParams``.

    l' = clip(l + assimilation * mean_liked(l_author - l) + backfire * sign(l) * sum_outgroup(div) / n_scanned)
    """
    lu = np.asarray(lean_user, np.float64)
    la = np.asarray(lean_author, np.float64)
    gap = np.where(liked, la - lu[:, None], 0.0).sum(1) / np.maximum(liked.sum(1), 1)
    out = examined & (la * lu[:, None] < 0)
    push = np.where(out, divisiveness, 0.0).sum(1) / np.maximum(examined.sum(1), 1)
    return np.clip(lu + p.assimilation * gap + p.backfire * np.sign(lu) * push, -1, 1).astype(np.float32)


# --------------------------------------------------------------------------- metrics collection


@dataclass
class StepData:
    """What one step of one world exposes to the metrics (sim indices, page shape (n_active, page_len))."""

    step: int
    active: np.ndarray
    pages: np.ndarray  # sim post idx, -1 empty
    res: Any  # population.Response
    engaged: np.ndarray  # (n_active, page_len) bool: liked, reposted or replied
    n_posts_created: int
    seconds_rank: float


class Collector:
    """Per-step scalar metrics plus cumulative exposure, for one policy world."""

    def __init__(self, cfg: SimConfig, pop: Population, posts: PostTable, panel: np.ndarray):
        self.cfg = cfg
        self.pop = pop
        self.posts = posts
        self.series: dict[str, list[float]] = {}
        n = pop.n_users
        lean0 = pop.leaning.astype(np.float64).copy()
        self.author_lgroup = np.digitize(lean0, [-1 / 3, 1 / 3])  # 0 left, 1 centre, 2 right (fixed)
        self.n_comm = int(pop.community.max()) + 1
        self.exposure_l = np.zeros((n, 3), bool)  # user saw any post by a left/centre/right author
        self.exposure_c = np.zeros((n, self.n_comm), bool)
        self.step_exposure: list[tuple[np.ndarray, np.ndarray]] = []  # per step (active x groups) for Huszar
        self.author_impressions = np.zeros(n)
        self.topic_counts = np.zeros((n, len(pop.topics)))
        self.panel = panel
        self.panel_pos = np.full(n, -1)
        self.panel_pos[panel] = np.arange(len(panel))
        self.consumed: list[np.ndarray] = []  # keys panel_pos * P + post of clicked items
        self.ideal_consumed: list[np.ndarray] = []
        self.homog: list[tuple[int, float]] = []
        self.leaning_start = lean0
        self.post_impressions = np.zeros(posts.n, np.int64)  # per sim post: times it was scanned (grows)
        self.engagements = 0  # likes, reposts and replies on served items, all steps

    def add(self, name: str, value: float | np.ndarray) -> None:
        self.series.setdefault(name, []).append(float(value))

    def step(self, d: StepData) -> None:
        """Record the per-step metrics of one step."""
        p, res, cfg = self.posts, d.res, self.cfg
        valid = d.pages >= 0
        pp = np.maximum(d.pages, 0)
        ex = res.examined
        n_imp = int(ex.sum())
        self.add("feed_requests", len(d.active))
        self.add("engagement_rate", M.engagement_rate(d.engaged[ex]) if n_imp else np.nan)
        self.add("click_rate", M.engagement_rate(res.clicked[ex]) if n_imp else np.nan)
        self.add("time_spent_s", float(res.time_spent.mean()) if len(d.active) else np.nan)
        self.add("satisfaction", float(np.nanmean(res.item_satisfaction)) if n_imp else np.nan)
        self.add("regret", float(np.nanmean(res.item_regret)) if n_imp else np.nan)
        self.add(
            "regretted_time_s", float(np.mean(res.time_spent * np.nan_to_num(res.regret))) if len(d.active) else np.nan
        )
        top = valid[:, : cfg.divisive_top_k]
        div = p.divisiveness[pp[:, : cfg.divisive_top_k]][top]
        self.add("divisive_share_top10", M.divisive_share(div, cfg.divisive_threshold))
        self.add("divisive_share_consumed", M.divisive_share(p.divisiveness[pp[ex]], cfg.divisive_threshold))
        # exposure diversity of the served pages
        rows = np.broadcast_to(np.arange(len(d.active))[:, None], d.pages.shape)
        tc = np.zeros((len(d.active), len(self.pop.topics)))
        np.add.at(tc, (rows[valid], p.topic[pp[valid]]), 1)
        self.add("topic_entropy", float(np.nanmean(M.topic_entropy(tc, normalise=True))) if valid.any() else np.nan)
        # creator concentration and group exposure from what was actually seen (logged impressions)
        u_ex = d.active[rows[ex]]
        a_ex = p.author[pp[ex]]
        if len(self.post_impressions) < p.n:
            self.post_impressions = np.r_[self.post_impressions, np.zeros(p.n - len(self.post_impressions), np.int64)]
        np.add.at(self.post_impressions, pp[ex], 1)
        self.engagements += int(d.engaged.sum())
        np.add.at(self.topic_counts, (u_ex, p.topic[pp[ex]]), 1)
        imp = np.bincount(a_ex, minlength=self.pop.n_users).astype(np.float64)
        self.author_impressions += imp
        self.add("creator_gini", M.gini(imp))
        self.exposure_l[u_ex, self.author_lgroup[a_ex]] = True
        self.exposure_c[u_ex, self.pop.community[a_ex]] = True
        el = np.zeros((len(d.active), 3), bool)
        el[rows[ex], self.author_lgroup[a_ex]] = True
        ec = np.zeros((len(d.active), self.n_comm), bool)
        ec[rows[ex], self.pop.community[a_ex]] = True
        self.step_exposure.append((el, ec))
        # homogenisation panel: what panel users consumed (clicked)
        pr = self.panel_pos[d.active[rows[res.clicked]]]
        ok = pr >= 0
        self.consumed.append(pr[ok].astype(np.int64) * (1 << 32) + pp[res.clicked][ok])
        lean = self.pop.leaning.astype(np.float64)
        self.add("polarisation", M.polarisation(lean))
        self.add("mean_abs_leaning", float(np.abs(lean).mean()))
        self.add("posts_created", d.n_posts_created)
        self.add("rank_seconds", d.seconds_rank)

    def homogenisation(self) -> float:
        """Chaney et al. 2018 homogenisation of the panel's cumulative consumption (vs the ideal recommender)."""
        cons = np.unique(np.concatenate(self.consumed)) if self.consumed else np.zeros(0, np.int64)
        ideal = np.unique(np.concatenate(self.ideal_consumed)) if self.ideal_consumed else np.zeros(0, np.int64)
        cols = np.unique(np.concatenate([cons, ideal]) & ((1 << 32) - 1))
        n = len(self.panel)
        if n < 2 or len(cols) == 0:
            return float("nan")

        def dense(keys: np.ndarray) -> np.ndarray:
            m = np.zeros((n, len(cols)), bool)
            m[keys >> 32, np.searchsorted(cols, keys & ((1 << 32) - 1))] = True
            return m

        return float(M.jaccard_homogenisation(dense(cons), self.pop.interests[self.panel], dense(ideal)))


# --------------------------------------------------------------------------- one policy world


class World:
    """One policy's copy of the society: its own store, FeedService (state + models), population and posts."""

    def __init__(self, cfg: SimConfig, policy: str, db: Path, base: Base, settings: Settings | None = None):
        self.cfg, self.policy_name = cfg, policy
        self.settings = settings or packaged_settings()
        gp = GeneratorParams()
        self.bp: BehaviourParams = gp.behaviour
        net = base.net
        # exactly the generator's latent population (see sim/generate.py), then warm its author rewards
        self.pop = Population.sample(net.n_users, np.random.default_rng(cfg.seed), gp.population, gp.start_ts)
        self._warm_rewards(net, base.end_ts)
        self.posts = PostTable.from_arrays(
            net.post_author,
            net.post_created,
            net.post_topic,
            net.post_quality,
            net.post_divisiveness,
            net.post_reply_to,
        )
        self.t = base.end_ts  # start of the current step (simulated seconds)
        self.clock_t = base.end_ts  # the Ingestor's clock: latest simulated activity
        self.store = open_store(db, synchronous="OFF")
        self.ing = Ingestor(self.store, self.settings.ingest, clock=lambda: self.clock_t + 60.0)
        self.svc = FeedService(self.ing, self.settings, clock="data")
        if policy not in self.svc.policies:
            raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(self.svc.policies)}")
        self.policy = self.svc.policies[policy]
        uids = self.store.user_ids()
        self.u2s = np.array([uids[f"u{i}"] for i in range(net.n_users)], np.int64)
        self.s2u = np.full(int(self.u2s.max()) + 1, -1, np.int64)
        self.s2u[self.u2s] = np.arange(net.n_users)
        pids = self.store.post_ids()
        self.p2s = np.array([pids[f"p{i}"] for i in range(net.n_posts)], np.int64)
        self.s2p = np.full(int(self.p2s.max()) + 1 if len(self.p2s) else 1, -1, np.int64)
        self.s2p[self.p2s] = np.arange(net.n_posts)
        self.rng = np.random.default_rng([cfg.seed, 1])  # same stream start in every world
        self.text_rng = np.random.default_rng([cfg.seed, 2])
        self.liked = np.zeros(0, np.int64)  # (user * 2^32 + post) already liked/reposted: kept unique
        n_panel = min(cfg.homog_panel, net.n_users)
        panel = np.sort(np.random.default_rng([cfg.seed, 3]).choice(net.n_users, n_panel, replace=False))
        self.metrics = Collector(cfg, self.pop, self.posts, panel)
        self.seconds = {"rank": 0.0, "respond": 0.0, "ingest": 0.0, "posts": 0.0, "retrain": 0.0, "metrics": 0.0}
        self.n_requests = 0
        self.n_served = 0  # items placed on pages, and of them the exploration places (``feed/explore.py``)
        self.n_explored = 0

    def final_extra(self) -> dict[str, Any]:
        """Extra end-of-run metrics of this world (none here; ``sim/moderation.py``'s worlds add theirs)."""
        return {}

    def _active(self, draw: np.ndarray, now: float) -> np.ndarray:
        """The users who request a feed in the step ending at ``now``, from one policy-independent uniform per user
        (``draw``): those below ``active_prob`` (``sim/notify_world.py``'s worlds add the sessions notifications
        start and thin self-initiated ones by the response model)."""
        return np.flatnonzero(draw < self.cfg.active_prob)

    def _warm_rewards(self, net: SyntheticNetwork, end: float) -> None:
        """Credit authors with the history's engagement, day by day, so posting rates continue smoothly."""
        w = np.zeros(32)
        for k, v in REWARD_WEIGHTS.items():
            w[int(k)] = v
        ev = net.events
        on = (ev.post >= 0) & (w[ev.kind] > 0)
        day = ((ev.ts[on] - net.start_ts) // DAY).astype(np.int64)
        authors, ww = net.post_author[ev.post[on]], w[ev.kind[on]]
        for d in np.unique(day):
            m = day == d
            self.pop.reward_authors(authors[m], ww[m], float(net.start_ts + (d + 1) * DAY), self.bp)

    # ------------------------------------------------------------------ writes through the Ingestor
    def _create_posts(self, cols: tuple[np.ndarray, ...]) -> int:
        """Add posts (author, created, topic, quality, div[, reply_to]) to the table and the store."""
        k = len(cols[0])
        if k == 0:
            return 0
        reply_to = cols[5] if len(cols) > 5 else np.full(k, -1, np.int32)
        author, created, topic, quality, div = cols[:5]
        idx = self.posts.add(author, created, topic, quality, div, reply_to)
        topics = self.pop.topics
        parent_author = np.where(reply_to >= 0, self.posts.author[np.maximum(reply_to, 0)], -1)
        text = render_posts(topics, cols[2], cols[3], cols[4], self.pop.leaning[cols[0]], self.text_rng, parent_author)
        recs = [
            {
                "id": f"p{i}",
                "author": f"u{a}",
                "text": tx,
                "created_at": float(c),
                "topics": [topics[tp]],
                "quality": float(min(max(q, 0.0), 1.0)),
                "divisiveness": float(min(max(dv, 0.0), 1.0)),
                "reply_to": f"p{r}" if r >= 0 else None,
            }
            for i, a, tx, c, tp, q, dv, r in zip(
                idx.tolist(),
                cols[0].tolist(),
                text,
                cols[1].tolist(),
                cols[2].tolist(),
                cols[3].tolist(),
                cols[4].tolist(),
                reply_to.tolist(),
            )
        ]
        out = self.ing.create_posts(recs)
        sidx = np.array([o["idx"] for o in out], np.int64)
        self.p2s = np.concatenate([self.p2s, sidx])
        if sidx.max() >= len(self.s2p):
            grown = np.full(max(int(sidx.max()) + 1, 2 * len(self.s2p)), -1, np.int64)
            grown[: len(self.s2p)] = self.s2p
            self.s2p = grown
        self.s2p[sidx] = idx
        return k

    def _ingest(self, res: Response, step: int) -> None:
        """Send a step's events back through the Ingestor (the feedback loop), one request id per session."""
        ev = res.events
        kind, user, post = ev.kind, ev.user, ev.post
        keep = np.ones(len(kind), bool)
        pair = (kind == int(EventKind.LIKE)) | (kind == int(EventKind.REPOST))
        if pair.any():  # at most one like / repost per (user, post), as in the generator
            key = (user[pair] << 32) + post[pair] * 2 + (kind[pair] == int(EventKind.REPOST))
            _, first = np.unique(key, return_index=True)
            fresh = np.zeros(int(pair.sum()), bool)
            fresh[first] = True
            fresh &= ~np.isin(key, self.liked)
            keep[np.flatnonzero(pair)] = fresh
            self.liked = np.union1d(self.liked, key[fresh])
        ev = ev.take(keep)
        tgt = ev.target_user
        self.ing.ingest_batch(
            EventBatch.from_columns(
                kind=ev.kind,
                user=self.u2s[ev.user],
                post=np.where(ev.post >= 0, self.p2s[np.maximum(ev.post, 0)], -1),
                target_user=np.where(tgt >= 0, self.u2s[np.maximum(tgt, 0)], -1),
                ts=ev.ts,
                value=ev.value,
                position=ev.position,
                surface=np.full(len(ev), "sim", object),
                request_id=[f"{self.policy_name}:{step}-{u}.0" for u in ev.user.tolist()],
            )
        )

    # ------------------------------------------------------------------ ranking
    def _pages(self, active: np.ndarray, now: float) -> np.ndarray:
        """(n_active, page_len) sim post indices ranked by the real pipeline, in batches."""
        L = self.cfg.page_len
        out = np.full((len(active), L), -1, np.int64)
        starts = list(range(0, len(active), self.cfg.batch))
        if self.cfg.workers > 1 and len(starts) > 1 and "fork" in mp.get_all_start_methods():
            prepare(self.svc.state, self.svc.models, self.policy, now)  # shared indexes built once, before forking
            global _FORKED
            _FORKED = (self, active, now)
            with ProcessPoolExecutor(
                self.cfg.workers, mp_context=mp.get_context("fork"), initializer=_single_threaded
            ) as pool:
                parts = list(pool.map(_rank_batch, starts))
            _FORKED = None
        else:
            parts = [self._rank_batch(active, now, a) for a in starts]
        for a, part in zip(starts, parts):
            out[a : a + len(part)] = part
        return out

    def _rank_batch(self, active: np.ndarray, now: float, a: int) -> np.ndarray:
        users = active[a : a + self.cfg.batch]
        L = self.cfg.page_len
        pg = rank(self.svc.state, self.svc.models, self.u2s[users], self.policy, now, L)
        self.n_served += len(pg.post)  # in this process: counted only when ranking is not forked (workers = 1)
        self.n_explored += int(explored_items(pg.deltas).sum())
        if not len(pg.row):
            return np.full((len(users), L), -1, np.int64)
        return page_matrix(pg.row, self.s2p[pg.post], len(users), L)

    def _following(self, active: np.ndarray, pages: np.ndarray) -> np.ndarray:
        fol = self.svc.state.graph.following
        authors = self.u2s[self.posts.author[np.maximum(pages, 0)]]
        su = self.u2s[active].tolist()
        out = np.zeros(pages.shape, bool)
        for i, (u, row) in enumerate(zip(su, authors.tolist())):
            f = fol(u)
            if f:
                out[i] = [a in f for a in row]
        return out & (pages >= 0)

    # ------------------------------------------------------------------ dynamics
    def _opinions(self, active: np.ndarray, pages: np.ndarray, res: Any, liked: np.ndarray) -> None:
        lean = self.pop.leaning
        la = lean[self.posts.author[np.maximum(pages, 0)]]
        div = self.posts.divisiveness[np.maximum(pages, 0)]
        lean[active] = opinion_step(lean[active], la, liked, res.examined, div, self.cfg.opinion)

    def _ideal(self, active: np.ndarray, now: float) -> None:
        """Panel users' consumption under an ideal recommender (true stated value, recent posts): Chaney's baseline."""
        panel_act = active[self.metrics.panel_pos[active] >= 0]
        p = self.posts
        pool = np.flatnonzero(
            (p.created < now) & (p.created >= now - self.cfg.ideal_pool_hours * 3600.0) & (p.reply_to < 0)
        )
        if not len(panel_act) or not len(pool):
            return
        L = min(self.cfg.page_len, len(pool))
        match = self.pop.match(panel_act[:, None], p.topic[pool][None, :].astype(np.int64))
        sat, _ = stated_satisfaction(match, p.quality[pool][None, :], p.divisiveness[pool][None, :], 0.0, self.bp)
        sat[p.author[pool][None, :] == panel_act[:, None]] = -1.0
        top = np.argpartition(-sat, L - 1, axis=1)[:, :L]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sat, top, 1), 1), 1)
        pages = pool[top]
        rng = np.random.default_rng([self.cfg.seed, 4, len(self.metrics.ideal_consumed)])
        res = respond(pages, panel_act, now, rng, self.pop, p, self.bp, update=False)
        rows = np.broadcast_to(np.arange(len(panel_act))[:, None], pages.shape)
        pr = self.metrics.panel_pos[panel_act[rows[res.clicked]]]
        self.metrics.ideal_consumed.append(pr.astype(np.int64) * (1 << 32) + pages[res.clicked])

    def _retrain(self) -> None:
        folder = models_dir(self.store.path)
        if self.cfg.retrain == "full":
            train_all(
                self.store,
                folder,
                max_rows=self.cfg.train_rows,
                retrieval=self.settings.retrieval,
                state=self.settings.state,
            )
        else:
            n_u, n_p = self.store.count("users"), self.store.count("posts")
            X = engagement_matrix(self.store, n_u, n_p)
            np.save(folder / "als_user_factors.npy", fit_als(X, seed=self.cfg.seed))
            np.save(folder / "bridging_sides.npy", fit_bridging_sides(self.store, n_u, n_p))
        self.svc.reload()

    def step(self, k: int) -> None:
        """Advance one step: new posts, feeds for the active users, their reactions, learning."""
        cfg, step_s = self.cfg, self.cfg.step_hours * 3600.0
        t0 = time.perf_counter()
        fresh = sample_new_posts(self.pop, self.t, step_s, self.rng, self.bp)  # made during [t, t + step)
        self.t += step_s
        now = self.clock_t = self.t
        n_new = self._create_posts(fresh)
        t1 = time.perf_counter()
        arng = np.random.default_rng([cfg.seed, 5, k])  # policy-independent: same active users in every world
        active = self._active(arng.random(self.pop.n_users), now)
        t_sess = now + arng.random(len(active)) * 60.0
        pages = self._pages(active, now)
        t2 = time.perf_counter()
        following = self._following(active, pages)
        res = respond(pages, active, t_sess, self.rng, self.pop, self.posts, self.bp, following=following)
        t3 = time.perf_counter()
        ev = res.events
        self.clock_t = max(now, float(ev.ts.max()) if len(ev) else now)
        self._ingest(res, k)
        rep = ev.kind == int(EventKind.REPLY)
        n_new += self._create_posts(
            sample_reply_posts(self.pop, self.posts, ev.user[rep], ev.post[rep], ev.ts[rep], self.rng)
        )
        w = np.zeros(32)
        for kk, v in REWARD_WEIGHTS.items():
            w[int(kk)] = v
        on = (ev.post >= 0) & (w[ev.kind] > 0)
        self.pop.reward_authors(self.posts.author[ev.post[on]], w[ev.kind[on]], now, self.bp)
        t4 = time.perf_counter()
        row = np.searchsorted(active, ev.user)
        engaged = np.zeros(pages.shape, bool)
        liked = np.zeros(pages.shape, bool)
        m = np.isin(ev.kind, [int(e) for e in ENGAGED]) & (ev.position >= 0)
        engaged[row[m], ev.position[m]] = True
        m = np.isin(ev.kind, [int(EventKind.LIKE), int(EventKind.REPOST)])
        liked[row[m], ev.position[m]] = True
        self._opinions(active, pages, res, liked)
        self._ideal(active, now)
        self.metrics.step(StepData(k, active, pages, res, engaged, n_new, t2 - t1))
        if cfg.homog_every and ((k + 1) % cfg.homog_every == 0 or k + 1 == cfg.steps):
            self.metrics.homog.append((k, self.metrics.homogenisation()))
        t5 = time.perf_counter()
        if cfg.retrain_every and (k + 1) % cfg.retrain_every == 0 and k + 1 < cfg.steps:
            self._retrain()
        t6 = time.perf_counter()
        self.n_requests += len(active)
        for name, dt in (
            ("posts", t1 - t0),
            ("rank", t2 - t1),
            ("respond", t3 - t2),
            ("ingest", t4 - t3),
            ("metrics", t5 - t4),
            ("retrain", t6 - t5),
        ):
            self.seconds[name] += dt

    def close(self) -> None:
        self.svc.close()  # stop the FeedService's tail thread before its store closes
        self.store.close()


# --------------------------------------------------------------------------- the whole run


@dataclass
class SimResult:
    config: dict[str, Any]
    series: dict[str, dict[str, list[float]]]  # policy -> metric -> per step
    final: dict[str, dict[str, Any]]  # policy -> metric -> value
    # policy -> grouping -> group -> A (vs chronological); None where undefined (no exposure)
    amplification: dict[str, dict[str, dict[str, float | None]]]
    amplification_series: dict[str, dict[str, list[float | None]]]  # policy -> group -> per step
    homogenisation: dict[str, list[tuple[int, float | None]]]
    seconds: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _amp(exp_t: np.ndarray, exp_c: np.ndarray) -> np.ndarray:
    """Huszar amplification of every group, treatment exposure vs control exposure (user x group bool)."""
    n_t, g = exp_t.shape
    u_t, g_t = np.nonzero(exp_t)
    u_c, g_c = np.nonzero(exp_c)
    treated = np.r_[np.ones(n_t, bool), np.zeros(len(exp_c), bool)]
    return M.amplification_ratio(np.r_[u_t, u_c + n_t], np.r_[g_t, g_c], treated, n_groups=g)


def _nan(x: float | np.floating | np.ndarray | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def finalise(cfg: SimConfig, worlds: dict[str, World], seconds: dict[str, Any]) -> SimResult:
    """Summaries per policy, plus amplification of each policy against the chronological control."""
    series = {p: w.metrics.series for p, w in worlds.items()}
    final: dict[str, dict[str, Any]] = {}
    for p, w in worlds.items():
        m = w.metrics
        f = {
            name: _nan(float(np.nanmean(v)))
            for name, v in m.series.items()
            if name not in ("polarisation", "mean_abs_leaning", "feed_requests", "rank_seconds")
        }
        f["polarisation_start"] = _nan(M.polarisation(m.leaning_start))
        f["polarisation_end"] = _nan(m.series["polarisation"][-1]) if m.series.get("polarisation") else None
        f["bimodality_end"] = _nan(M.bimodality_coefficient(w.pop.leaning.astype(np.float64)))
        f["creator_gini_cumulative"] = _nan(M.gini(m.author_impressions))
        seen = m.topic_counts.sum(1) > 0
        f["topic_entropy_cumulative"] = _nan(np.nanmean(M.topic_entropy(m.topic_counts[seen], normalise=True)))
        f["homogenisation_end"] = _nan(m.homog[-1][1]) if m.homog else None
        f["feed_requests"] = int(w.n_requests)
        f["posts_created"] = int(np.nansum(m.series.get("posts_created", [0])))
        f.update(w.final_extra())
        final[p] = f
    amp: dict[str, dict[str, dict[str, float | None]]] = {}
    amp_series: dict[str, dict[str, list[float | None]]] = {}
    ctrl = worlds.get("chronological")
    if ctrl is not None:
        cm = ctrl.metrics
        comm = [f"community {i}" for i in range(cm.n_comm)]
        for p, w in worlds.items():
            if p == "chronological":
                continue
            wm = w.metrics
            amp[p] = {
                "leaning": dict(zip(LEANING_GROUPS, map(_nan, _amp(wm.exposure_l, cm.exposure_l)))),
                "community": dict(zip(comm, map(_nan, _amp(wm.exposure_c, cm.exposure_c)))),
            }
            per = [_amp(a[0], b[0]) for a, b in zip(wm.step_exposure, cm.step_exposure)]
            amp_series[p] = {g: [_nan(x[i]) for x in per] for i, g in enumerate(LEANING_GROUPS)}
    homog = {p: [(int(k), _nan(v)) for k, v in w.metrics.homog] for p, w in worlds.items()}
    return SimResult(
        config=cfg.to_dict(),
        series=series,
        final=final,
        amplification=amp,
        amplification_series=amp_series,
        homogenisation=homog,
        seconds=seconds,
    )


#: Builds one world: (config, its name in ``cfg.policies``, its store, the shared base, settings).
WorldFactory = Callable[[SimConfig, str, Path, Base, Settings | None], World]


def run_simulation(
    cfg: SimConfig,
    folder: Path,
    progress: Progress | None = None,
    base: Base | None = None,
    settings: Settings | None = None,
    make_world: WorldFactory | None = None,
) -> SimResult:
    """Run every policy of ``cfg`` on the same seeded society; stores go to ``folder/<policy>.db``. ``settings``
    (default: the packaged ones) gives the feed's ``serving``, ``state`` and ``retrieval`` sections.
    ``make_world`` (default: ``World``) builds each named world (``sim/moderation.py``: moderation arms)."""
    say = progress or (lambda s, d, t: None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    base = base or prepare_base(cfg, folder, say, settings)
    worlds: dict[str, World] = {}
    seconds: dict[str, Any] = {"base": base.seconds, "worlds": {}}
    for p in cfg.policies:
        t = time.perf_counter()
        w = (make_world or World)(cfg, p, copy_base(base, folder / f"{p}.db"), base, settings)
        setup = time.perf_counter() - t
        t = time.perf_counter()
        for k in range(cfg.steps):
            w.step(k)
            say(p, k + 1, cfg.steps)
        loop = time.perf_counter() - t
        seconds["worlds"][p] = {"setup": setup, "loop": loop, "requests": w.n_requests, **w.seconds}
        w.close()
        worlds[p] = w
    seconds["total"] = time.perf_counter() - t_all
    return finalise(cfg, worlds, seconds)


#: (world, active users, now) of the step being ranked; set just before forking the ranking workers.
_FORKED: tuple[Any, np.ndarray, float] | None = None


def _single_threaded() -> None:
    """Ranking workers split the cores between them, so each predicts on one thread."""
    feed_heads.BIG_BATCH = 1 << 62


def _rank_batch(a: int) -> np.ndarray:
    world, active, now = _FORKED  # type: ignore[misc]
    return world._rank_batch(active, now, a)
