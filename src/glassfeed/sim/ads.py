"""Ads in the simulated feeds (issue 15): what an ad load earns and what it costs people, for several feed policies.

Each arm is a feed policy with an ad load (the policy's ``[ads]`` section with another ``max_share``), one world of
``sim/loop.py`` on the seeded society, with the **real lever** beside its feed: an ``AdService`` on the world's
``FeedService`` (installed as its ``ad_server``, as in the server), campaigns created through
``AdService.put_campaign``, every page's ads placed by ``AdService.place`` (the ad load's places, eligibility,
targeting, frequency caps, pacing, budgets, the generalised second-price auction, CPM charged when served), clicks and
hides sent back through ``AdService.interact`` (CPC billed on the click), everything in the world's ad log.

The market (``MarketParams``, drawn per seed, the same in every arm): one brand account per advertiser, one
campaign each, promoting one creative: a post by the brand on the advertiser's topic, created
``creative_age_days`` before the run so that no feed policy ranks it as a post (every policy's ``max_age_hours``
is shorter): it appears only as an ad. Advertisers alternate between bidding per 1,000 impressions (CPM) and per
click (CPC), and between targeting people interested in their topic (the topics they picked) and targeting no one
in particular. Topics that reveal a special category (politics, health) are not sold: the lever refuses them.

The behaviour model for ads (``AdBehaviour``; every coefficient is an assumption, not an estimate):

- a person scans an ad like any item of the cascade (``population.respond``'s scan time, fatigue, quit hazard and
  time budget, ``respond_with_ads``); ``match`` is their interest in the ad's topic relative to their favourite
  topic (``Population.match``), ``1 - match`` its irrelevance;
- P(click | scanned) = sigmoid(``click_bias`` + ``click_match`` x match); a click costs the time spent on the
  advertiser's page (lognormal, median ``click_dwell_s``) and the scan then goes on;
- P(hide | scanned, not clicked) = sigmoid(``hide_bias`` + ``hide_irrelevance`` x irrelevance): the lever then
  hides the advertiser for that person and the campaign's quality falls;
- annoyance: every scanned ad adds ``annoyance_hazard`` x irrelevance to the quit hazard of every later item of
  the session (shorter sessions), and its stated satisfaction and regret are the behaviour model's equations on
  the creative's match, quality and divisiveness with ``sat_bias`` + ``sat_irrelevance`` x irrelevance and
  ``regret_bias`` + ``regret_irrelevance`` x irrelevance added to their logits (an ad is less worth one's time than
  a post of the same match and quality, and an irrelevant ad is regretted);
- a grudge that outlasts the session: each person's summed irrelevance of scanned ads, halving every
  ``grudge_half_life_h``, lowers their chance of opening the app in a step by ``exp(-return_penalty x grudge)``
  (from the loop's policy-independent draw, so with no ads the same people open it as in every other world).

With no ad on a page ``respond_with_ads`` is ``population.respond`` draw for draw (tests/test_sim_ads.py), so the
0% arm of a policy is that policy's plain world. Organic events carry their place on the organic page (as the
server logs impressions: ads are not counted), so what the models learn from is what the server would log.

Per arm, beside every metric of the loop's ``Collector`` (engagement per impression, stated satisfaction and regret
of the organic items scanned, divisive share, ...; its time per session and regretted time per session include the
time on ads and their regret, the session's own): sessions, ad places offered, ads served (impressions in the ad
log), ads scanned, clicks, hides, revenue (billed prices in the ad log), revenue per 1,000 sessions, CTR, fill
rate, satisfaction of everything scanned (ads included), engagements per session and the ad-load violations found
on served pages (first position, gap, share: always 0 unless the lever breaks its own rule).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, logit

from glassfeed.ads.campaigns import MICROS, CampaignSpec
from glassfeed.ads.placement import ad_places, max_ads
from glassfeed.ads.service import AdService
from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.policy import AdLoad
from glassfeed.feed.service import FeedService
from glassfeed.settings import Settings
from glassfeed.sim import behaviour as bm
from glassfeed.sim.behaviour import BehaviourParams
from glassfeed.sim.loop import (
    ENGAGED,
    REWARD_WEIGHTS,
    Base,
    Progress,
    SimConfig,
    SimResult,
    StepData,
    World,
    run_simulation,
)
from glassfeed.sim.population import (
    Population,
    PostTable,
    Response,
    author_affinity,
    sample_new_posts,
    sample_reply_posts,
)
from glassfeed.store import AdLogRow

#: A merged page's ad slot (organic slots hold a sim post index >= 0, empty slots -1).
AD = -2
#: Separates the feed policy from the ad load in an arm's name (``engagement+ads10``: 10%).
ARM_SEP = "+"
#: Topics advertisers buy; none reveals a special category of the ad policy (politics, health are refused).
AD_TOPICS: tuple[str, ...] = (
    "sports",
    "music",
    "gaming",
    "food",
    "movies",
    "tech",
    "travel",
    "fashion",
    "fitness",
    "finance",
    "pets",
    "books",
    "art",
    "comedy",
    "education",
    "science",
)
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class AdBehaviour:
    """How people respond to ads (see the module docstring); guesses, written once here."""

    click_bias: float = -5.5  # P(click | scanned) = sigmoid(click_bias + click_match * match): 0.4% .. 12%
    click_match: float = 3.5
    click_dwell_s: float = 8.0  # median seconds on the advertiser's page after a click (lognormal)
    click_dwell_sigma: float = 0.8
    hide_bias: float = -6.5  # P(hide | scanned, not clicked) = sigmoid(hide_bias + hide_irrelevance * (1 - match))
    hide_irrelevance: float = 2.5
    annoyance_hazard: float = 0.04  # quit hazard added to every later item, per unit of a scanned ad's irrelevance
    sat_bias: float = -1.0  # added to an ad's satisfaction logit: an ad is less worth one's time than a post...
    sat_irrelevance: float = -1.0  # ... and less the less relevant it is (per unit of irrelevance)
    regret_bias: float = 0.5  # added to an ad's regret logit ...
    regret_irrelevance: float = 1.5  # ... and per unit of irrelevance
    return_penalty: float = 0.03  # P(opening the app) x exp(-return_penalty * grudge)
    grudge_half_life_h: float = 48.0

    def click_prob(self, match: np.ndarray) -> np.ndarray:
        return np.asarray(expit(self.click_bias + self.click_match * match))

    def hide_prob(self, match: np.ndarray) -> np.ndarray:
        return np.asarray(expit(self.hide_bias + self.hide_irrelevance * (1.0 - match)))


@dataclass(frozen=True)
class MarketParams:
    """The synthetic advertisers (see the module docstring); money in the ad policy's currency."""

    advertisers: int = 16
    cpm_bid: tuple[float, float] = (1.0, 6.0)  # per 1,000 impressions, uniform
    cpc_bid: tuple[float, float] = (0.10, 0.60)  # per click, uniform
    daily_budget_per_1k_people: tuple[float, float] = (0.5, 3.0)  # per day and 1,000 simulated people, uniform
    creative_quality: tuple[float, float] = (0.45, 0.8)
    creative_divisiveness: tuple[float, float] = (0.0, 0.1)
    creative_age_days: float = 30.0


@dataclass(frozen=True)
class Advertiser:
    """One advertiser of the market: its brand account, campaign and creative."""

    index: int
    brand: str  # the brand's account id (the campaign's advertiser)
    topic: str
    objective: str  # "reach" (CPM) or "clicks" (CPC)
    targeted: bool  # targets people interested in its topic; else no one in particular
    bid: float
    daily_budget: float
    creative_quality: float
    creative_divisiveness: float

    @property
    def campaign(self) -> str:
        return f"c{self.index}-{self.topic}"

    @property
    def creative(self) -> str:
        return f"ad{self.index}-{self.topic}"


def make_market(seed: int, people: int, params: MarketParams | None = None) -> list[Advertiser]:
    """The advertisers of a run (drawn from ``seed``; budgets scale with the number of people): advertiser ``i``
    sells ``AD_TOPICS[i]``, bids per click when ``i // 2`` is odd (else per 1,000 impressions) and targets its topic
    when ``i`` is odd, so that the four kinds are balanced."""
    p = params or MarketParams()
    if not 1 <= p.advertisers <= len(AD_TOPICS):
        raise ValueError(f"advertisers: between 1 and {len(AD_TOPICS)}")
    rng = np.random.default_rng([seed, 8])
    out = []
    scale = people / 1000.0
    for i in range(p.advertisers):
        cpc = (i // 2) % 2 == 1
        lo, hi = p.cpc_bid if cpc else p.cpm_bid
        out.append(
            Advertiser(
                index=i,
                brand=f"brand{i}-{AD_TOPICS[i]}",
                topic=AD_TOPICS[i],
                objective="clicks" if cpc else "reach",
                targeted=i % 2 == 1,
                bid=round(float(rng.uniform(lo, hi)), 2),
                daily_budget=round(float(rng.uniform(*p.daily_budget_per_1k_people)) * scale, 2),
                creative_quality=float(rng.uniform(*p.creative_quality)),
                creative_divisiveness=float(rng.uniform(*p.creative_divisiveness)),
            )
        )
    return out


def arm_load(base: AdLoad, share: float, min_gap: int = 0) -> AdLoad:
    """The feed policy's ad load with ``max_share`` = ``share``: its own first position; ``min_gap`` posts between
    two ads, or (0) the even spacing of the share, ``floor((1 - share) / share)`` posts (the policy's own gap would
    cap the share: with 6, a 20-post page carries at most 3 ads, 13%)."""
    if share <= 0:
        return AdLoad(first_position=base.first_position, min_gap=base.min_gap, max_share=0.0)
    gap = min_gap or max(1, int(np.floor((1.0 - share) / share + 1e-9)))
    return AdLoad(first_position=base.first_position, min_gap=gap, max_share=share)


def load_violations(is_ad: np.ndarray, organic: np.ndarray, load: AdLoad) -> int:
    """Served pages (rows: places, ads and posts in their order) that break ``load``: an ad above place
    ``first_position``, fewer than ``min_gap`` posts between two ads, more than ``max_share`` of the places ads, or
    an ad with no post below it."""
    bad = 0
    for ads, posts in zip(is_ad.tolist(), organic.tolist()):
        where = [m for m, a in enumerate(ads) if a]
        if not where:
            continue
        n_posts = sum(posts)
        above = [sum(posts[:m]) for m in where]  # posts above each ad
        if (
            above[0] < load.first_position - 1
            or any(b - a < load.min_gap for a, b in itertools.pairwise(above))
            or len(where) / (len(where) + n_posts) > load.max_share + 1e-9
            or above[-1] >= n_posts
        ):
            bad += 1
    return bad


def arm_name(policy: str, share: float) -> str:
    """``engagement+ads12p5`` for 12.5%: no dot (request ids split on the first one)."""
    return f"{policy}{ARM_SEP}ads{100 * share:g}".replace(".", "p")


@dataclass(frozen=True)
class AdArm:
    """A feed policy with an ad load (``max_share``)."""

    feed_policy: str
    ad_load: float

    @property
    def name(self) -> str:
        return arm_name(self.feed_policy, self.ad_load)


def arms_for(policies: Sequence[str], loads: Sequence[float]) -> list[AdArm]:
    """Every feed policy with every ad load, policy-major."""
    return [AdArm(p, a) for p in policies for a in loads]


# --------------------------------------------------------------------------- the cascade with ads


@dataclass
class AdOutcome:
    """What a batch of sessions did with its ads; arrays have the merged page's shape (rows: sessions)."""

    seen: np.ndarray  # ads scanned
    clicked: np.ndarray
    hidden: np.ndarray
    irrelevance: np.ndarray  # 1 - match on ad slots, 0 elsewhere
    item_satisfaction: np.ndarray  # every scanned item, ads included (NaN where not scanned)
    item_regret: np.ndarray


def respond_with_ads(
    merged: np.ndarray,
    opos: np.ndarray,
    page_len: int,
    ad_topic: np.ndarray,
    ad_quality: np.ndarray,
    ad_divisiveness: np.ndarray,
    users: np.ndarray,
    t: float | np.ndarray,
    rng: np.random.Generator,
    ad_rng: np.random.Generator,
    pop: Population,
    posts: PostTable,
    params: BehaviourParams | None = None,
    ads: AdBehaviour | None = None,
    following: np.ndarray | None = None,
    follow_prob: float = 0.08,
    update: bool = True,
) -> tuple[Response, AdOutcome]:
    """``population.respond``'s cascade on pages with ads in them (see the module docstring).

    ``merged`` (n, W): sim post indices of the organic items, ``AD`` on ad slots, -1 on empty slots; ``opos`` the
    organic page's slot of each organic item (-1 elsewhere); ``ad_topic``/``ad_quality``/``ad_divisiveness`` the
    creative of each ad slot; ``following`` marks (merged) slots whose author the user follows. Organic draws come
    from ``rng`` in ``respond``'s order and ad draws from ``ad_rng``, so with no ad on the pages the result is
    ``respond``'s. Returns the ``Response`` on the organic page (n, ``page_len``): events with organic positions,
    time spent and the session's mean satisfaction and regret over everything scanned (ads included), per-slot
    arrays of the organic items; and the ads' ``AdOutcome``."""
    p = params or BehaviourParams()
    ap = ads or AdBehaviour()
    merged = np.asarray(merged)
    users = np.asarray(users, dtype=np.int64)
    s, W = merged.shape
    t0 = np.broadcast_to(np.asarray(t, dtype=np.float64), (s,))
    organic = merged >= 0
    is_ad = merged == AD
    valid = organic | is_ad
    pp = np.where(organic, merged, 0)
    uu = np.broadcast_to(users[:, None], (s, W))
    authors = posts.author[pp]
    if following is None:
        following = np.zeros((s, W), bool)
    affinity = author_affinity(pop, uu, authors, following)
    f0 = pop.recover(users, t0, p) if update else pop.fatigue[users].astype(np.float64)
    seen_before: np.ndarray = np.cumsum(valid, 1) - valid
    fat = bm.fatigue_after(f0[:, None], seen_before, 0.0, p)
    topic = np.where(is_ad, ad_topic, posts.topic[pp]).astype(np.int64)
    match = pop.match(uu, topic)
    quality = np.where(is_ad, ad_quality, posts.quality[pp].astype(np.float64))
    div = np.where(is_ad, ad_divisiveness, posts.divisiveness[pp].astype(np.float64))
    align = pop.leaning[uu].astype(np.float64) * pop.leaning[authors]
    slot = np.broadcast_to(np.arange(W), (s, W)) if p.position_effect else None
    pr = bm.engagement_probs(match, quality, div, affinity, align, fat, slot, p)
    r = rng.random((8, s, W))
    click = organic & (r[0] < pr.click)
    dwell_s = np.where(click, bm.sample_dwell_s(pr, rng), 0.0)
    scan = p.scan_s * np.exp(0.3 * rng.standard_normal((s, W)))
    # the ads' own draws (a separate stream: with no ads every draw of ``rng`` is respond's)
    a = ad_rng.random((2, s, W))
    irrelevance = np.where(is_ad, 1.0 - match, 0.0)
    ad_click = is_ad & (a[0] < ap.click_prob(match))
    z = ad_rng.standard_normal((s, W))
    ad_dwell = np.where(ad_click, ap.click_dwell_s * np.exp(ap.click_dwell_sigma * z), 0.0)
    annoy = ap.annoyance_hazard * irrelevance
    above = np.cumsum(annoy, 1) - annoy  # the annoyance of the ads above each slot (reached: scanned)
    cost = np.where(valid, scan + dwell_s + ad_dwell, 0.0)
    before = np.cumsum(cost, 1) - cost
    budget = pop.time_budget[users] * (1.0 - f0) * np.exp(0.3 * rng.standard_normal(s))
    quit_ = valid & (r[1] < p.quit_hazard + p.quit_fatigue * fat + above)
    alive = (np.cumsum(quit_, 1) - quit_) == 0
    ex = valid & alive & (before < budget[:, None])
    oex = ex & organic
    click &= ex
    ad_seen = ex & is_ad
    ad_click &= ad_seen
    hidden = ad_seen & ~ad_click & (a[1] < ap.hide_prob(match))
    neg = oex & (r[2] < pr.see_less)
    report = oex & (r[3] < pr.report)
    like = oex & ~neg & ~report & (r[4] < pr.like)
    repost = oex & ~neg & ~report & (r[5] < pr.repost)
    reply = oex & ~report & (r[6] < pr.reply)
    follow = (like | repost) & ~following & (r[7] < follow_prob)
    not_int = neg & (rng.random((s, W)) < p.not_interested_share)
    t_item = t0[:, None] + before
    t_act = t_item + 0.8 * scan + dwell_s
    cols: list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None, bool]] = [
        (oex, EventKind.IMPRESSION, t_item, None, False),
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
                value=None if value is None else value[i, j].astype(np.float32),
                position=None if user_target else opos[i, j],  # the organic page's slot, as the server logs it
            )
        )
    ev = EventBatch.concat(parts)
    ev = ev.take(np.argsort(ev.ts, kind="stable"))
    n_seen = ex.sum(1)
    time_spent = (cost * ex).sum(1)
    sat, reg = bm.stated_satisfaction(match, quality, div, fat, p)
    sat = np.where(is_ad, expit(logit(sat) + ap.sat_bias + ap.sat_irrelevance * irrelevance), sat)
    reg = np.where(is_ad, expit(logit(reg) + ap.regret_bias + ap.regret_irrelevance * irrelevance), reg)
    denom = np.maximum(n_seen, 1)
    mean_sat = np.where(n_seen > 0, np.where(ex, sat, 0).sum(1) / denom, np.nan)
    mean_reg = np.where(n_seen > 0, np.where(ex, reg, 0).sum(1) / denom, np.nan)
    if update:
        pop.fatigue[users] = bm.fatigue_after(f0, n_seen, (div * ex).sum(1), p)
        pop.last_active[users] = t0 + time_spent
    # the organic page's view (what the loop's Collector measures)
    rows, cols_m = np.nonzero(organic)
    o_slot = opos[rows, cols_m]

    def organic_view(x: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full((s, page_len), fill, dtype=np.result_type(x, np.asarray(fill)))
        out[rows, o_slot] = x[rows, cols_m]
        return out

    item_sat = np.where(ex, sat, np.nan)
    item_reg = np.where(ex, reg, np.nan)
    response = Response(
        ev,
        time_spent=time_spent,
        n_seen=oex.sum(1),
        satisfaction=mean_sat,
        regret=mean_reg,
        examined=organic_view(oex, False),
        clicked=organic_view(click, False),
        item_satisfaction=organic_view(item_sat, np.nan),
        item_regret=organic_view(item_reg, np.nan),
    )
    return response, AdOutcome(ad_seen, ad_click, hidden, irrelevance, item_sat, item_reg)


# --------------------------------------------------------------------------- the arm's world


class SimAdService(AdService):
    """The ad service as the server runs it, except that its impressions reach the ad log when the simulator
    flushes them (after each step's pages), not with the feed's impressions from its background writer: the
    campaigns' rates, and so the auctions, then do not depend on thread timing."""

    def __init__(self, feed: FeedService) -> None:
        self._held: list[AdLogRow] = []
        super().__init__(feed)

    def _queue(self, rows: list[AdLogRow]) -> None:
        self._held.extend(rows)

    def flush(self) -> None:
        rows, self._held = self._held, []
        if rows:
            self.ingestor.append_ad_log(rows)


@dataclass
class AdTally:
    """Counts of one arm's ads over the run (the ad log has the billed truth; these are what the sim saw)."""

    places: int = 0  # ad places the ad load offered on served pages
    served: int = 0
    seen: int = 0
    clicked: int = 0
    hidden: int = 0
    violations: int = 0
    pages: int = 0


class AdWorld(World):
    """A feed policy's world with the ad lever placing ads at the arm's load, and people's response to them."""

    def __init__(
        self,
        cfg: SimConfig,
        arm: AdArm,
        db: Path,
        base: Base,
        settings: Settings | None = None,
        market: Sequence[Advertiser] = (),
        behaviour: AdBehaviour | None = None,
        min_gap: int = 0,
        creative_age_days: float = MarketParams().creative_age_days,
    ) -> None:
        super().__init__(cfg, arm.feed_policy, db, base, settings)
        self.policy_name, self.arm = arm.name, arm
        self.load = arm_load(self.policy.ads, arm.ad_load, min_gap)
        self.policy = replace(self.policy, ads=self.load)
        self.ap = behaviour or AdBehaviour()
        self.market = list(market)
        self.ads = SimAdService(self.svc)
        self.tally = AdTally()
        self.grudge = np.zeros(self.pop.n_users)
        self.grudge_t = self.t0 = self.t
        self._open_market(creative_age_days)
        self.closed_summary: dict[str, Any] | None = None

    def _open_market(self, age_days: float) -> None:
        """Brand accounts, their creatives (posts) and campaigns, through the Ingestor and the ad service."""
        if not self.market:
            self.creative_of: dict[str, int] = {}
            self.ad_topic = self.ad_quality = self.ad_div = np.zeros(0)
            return
        t_old = self.t - age_days * DAY
        self.ing.create_users(
            [{"id": a.brand, "interests": [a.topic], "created_at": t_old} for a in self.market], with_tokens=False
        )
        self.ing.create_posts(
            [
                {
                    "id": a.creative,
                    "author": a.brand,
                    "text": f"{a.brand.split('-')[0].capitalize()}: something new in {a.topic} #{a.topic}",
                    "created_at": t_old,
                    "topics": [a.topic],
                    "quality": round(a.creative_quality, 4),
                    "divisiveness": round(a.creative_divisiveness, 4),
                }
                for a in self.market
            ]
        )
        top = max(int(self.store.post_idx(a.creative) or 0) for a in self.market)
        if top >= len(self.s2p):  # creatives are no sim post: -1, should a feed ever rank one
            grown = np.full(top + 1, -1, np.int64)
            grown[: len(self.s2p)] = self.s2p
            self.s2p = grown
        for a in self.market:
            spec = CampaignSpec(
                name=f"{a.topic} ({a.objective})",
                on_behalf_of=a.brand,
                paid_by=a.brand,
                objective=a.objective,
                bid=a.bid,
                daily_budget=a.daily_budget,
                lifetime_budget=round(a.daily_budget * 1000, 2),
                start=t_old,
                creatives=[a.creative],
                targeting={"topics": [a.topic]} if a.targeted else {},
            )
            self.ads.put_campaign(a.brand, a.campaign, spec)
        topic_idx = {t: i for i, t in enumerate(self.pop.topics)}
        self.creative_of = {a.creative: i for i, a in enumerate(self.market)}
        self.ad_topic = np.array([topic_idx[a.topic] for a in self.market], np.int64)
        self.ad_quality = np.array([a.creative_quality for a in self.market])
        self.ad_div = np.array([a.creative_divisiveness for a in self.market])

    # ------------------------------------------------------------------ who opens the app
    def _grudge_at(self, now: float) -> np.ndarray:
        if now > self.grudge_t:
            self.grudge *= 0.5 ** ((now - self.grudge_t) / (self.ap.grudge_half_life_h * HOUR))
            self.grudge_t = now
        return self.grudge

    def _active(self, draw: np.ndarray, now: float) -> np.ndarray:
        """The loop's policy-independent draw, thinned by each person's grudge against ads (none: the same
        people as in every world)."""
        keep = np.exp(-self.ap.return_penalty * self._grudge_at(now))
        return np.flatnonzero(draw < self.cfg.active_prob * keep)

    # ------------------------------------------------------------------ the lever
    def _place_ads(
        self, active: np.ndarray, pages: np.ndarray, t_sess: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[tuple[int, int], str]]:
        """Every session's page with the ads ``AdService.place`` put in it (the feed's ``ad_server``, called as
        ``FeedService.feed`` calls it: the organic items, the policy with the arm's load, the session's time, its
        request id and the page's posts). Returns (merged page, organic slot of each item, creative of each ad
        slot, each ad's token)."""
        s, L = pages.shape
        W = L + max_ads(L, self.load)
        merged = np.full((s, W), -1, np.int64)
        opos = np.full((s, W), -1, np.int64)
        creative = np.full((s, W), -1, np.int64)
        tokens: dict[tuple[int, int], str] = {}
        server = self.svc.ad_server
        for i, u in enumerate(active.tolist()):
            row = pages[i]
            slots = np.flatnonzero(row >= 0)
            items: list[dict[str, Any]] = [{"slot": int(j)} for j in slots.tolist()]
            self.tally.places += len(ad_places(len(items), self.load, 1 << 30))
            if server is not None:
                with self.svc.lock:
                    items = server(
                        int(self.u2s[u]),
                        self.policy,
                        items,
                        float(t_sess[i]),
                        f"{self.policy_name}:{k}-{u}.0",
                        self.p2s[row[slots]],
                    )
            for m, it in enumerate(items):
                ad = it.get("ad")
                if ad is None:
                    merged[i, m], opos[i, m] = row[it["slot"]], it["slot"]
                else:
                    merged[i, m], creative[i, m] = AD, self.creative_of[it["post"]]
                    tokens[(i, m)] = ad["token"]
        is_ad = merged == AD
        self.tally.served += int(is_ad.sum())
        self.tally.pages += s
        self.tally.violations += load_violations(is_ad, merged >= 0, self.load)
        self.ads.flush()  # the step's impressions into the ad log (the ranker's counts) before any click
        return merged, opos, creative, tokens

    def _interact(self, active: np.ndarray, out: AdOutcome, tokens: dict[tuple[int, int], str]) -> None:
        """Clicks and hides back through the lever (``AdService.interact``: CPC billed, the advertiser hidden)."""
        for action, mask in (("click", out.clicked), ("hide", out.hidden)):
            for i, m in zip(*np.nonzero(mask)):
                self.ads.interact(f"u{int(active[i])}", tokens[(int(i), int(m))], action)

    # ------------------------------------------------------------------ one step
    def step(self, k: int) -> None:
        """``World.step`` with the ads: the same posts, active users, ranked pages and dynamics; the pages get the
        lever's ads, people respond with ``respond_with_ads``, ad clicks and hides go back through the lever. (The
        Chaney baseline ``_ideal`` is not run: homogenisation is not measured here.)"""
        cfg, step_s = self.cfg, self.cfg.step_hours * 3600.0
        t0 = time.perf_counter()
        fresh = sample_new_posts(self.pop, self.t, step_s, self.rng, self.bp)
        self.t += step_s
        now = self.clock_t = self.t
        n_new = self._create_posts(fresh)
        t1 = time.perf_counter()
        arng = np.random.default_rng([cfg.seed, 5, k])  # policy-independent: same active users in every world
        active = self._active(arng.random(self.pop.n_users), now)
        t_sess = now + arng.random(len(active)) * 60.0
        pages = self._pages(active, now)
        t2 = time.perf_counter()
        merged, opos, creative, tokens = self._place_ads(active, pages, t_sess, k)
        t_ads = time.perf_counter() - t2
        following = np.zeros(merged.shape, bool)
        fol = self._following(active, pages)
        r_, c_ = np.nonzero(opos >= 0)
        following[r_, c_] = fol[r_, opos[r_, c_]]
        c = np.maximum(creative, 0)
        res, out = respond_with_ads(
            merged,
            opos,
            cfg.page_len,
            self.ad_topic[c] if len(self.ad_topic) else np.zeros(merged.shape, np.int64),
            self.ad_quality[c] if len(self.ad_quality) else np.zeros(merged.shape),
            self.ad_div[c] if len(self.ad_div) else np.zeros(merged.shape),
            active,
            t_sess,
            self.rng,
            np.random.default_rng([cfg.seed, 9, k]),
            self.pop,
            self.posts,
            self.bp,
            self.ap,
            following=following,
        )
        t3 = time.perf_counter()
        ev = res.events
        self.clock_t = max(now, float(ev.ts.max()) if len(ev) else now)
        self._ingest(res, k)
        self._interact(active, out, tokens)
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
        # the ads' part: grudges, counts, the satisfaction of everything scanned
        self._grudge_at(now)
        self.grudge[active] += (out.irrelevance * out.seen).sum(1)
        self.tally.seen += int(out.seen.sum())
        self.tally.clicked += int(out.clicked.sum())
        self.tally.hidden += int(out.hidden.sum())
        n = len(active)
        mt = self.metrics
        mt.add("ads_per_session", float((merged == AD).sum() / n) if n else np.nan)
        mt.add("ads_seen_per_session", float(out.seen.sum() / n) if n else np.nan)
        scanned = bool(np.isfinite(out.item_satisfaction).any())
        mt.add("satisfaction_all", float(np.nanmean(out.item_satisfaction)) if scanned else np.nan)
        mt.add("regret_all", float(np.nanmean(out.item_regret)) if scanned else np.nan)
        mt.add("engagements_per_session", float(engaged.sum() / n) if n else np.nan)
        mt.add("organic_seen_per_session", float(res.n_seen.mean()) if n else np.nan)
        mt.step(StepData(k, active, pages, res, engaged, n_new, t2 - t1))
        t5 = time.perf_counter()
        if cfg.retrain_every and (k + 1) % cfg.retrain_every == 0 and k + 1 < cfg.steps:
            self._retrain()
        t6 = time.perf_counter()
        self.n_requests += n
        for name, dt in (
            ("posts", t1 - t0),
            ("rank", t2 - t1),
            ("ads", t_ads),
            ("respond", t3 - t2 - t_ads),
            ("ingest", t4 - t3),
            ("metrics", t5 - t4),
            ("retrain", t6 - t5),
        ):
            self.seconds[name] = self.seconds.get(name, 0.0) + dt

    def close(self) -> None:
        """Flush the ad log, read this arm's outcome from it, then close the world."""
        self.ads.close()
        self.closed_summary = self._summary()
        super().close()

    def _summary(self) -> dict[str, Any]:
        rows = self.store.ad_log(0)
        billed = {"impression": 0, "click": 0, "hide": 0, "engagement": 0}
        count = dict.fromkeys(billed, 0)
        cpm_imps = 0  # impressions of CPM campaigns (billed when served)
        cpm_campaigns = {a.campaign for a in self.market if a.objective == "reach"}
        for r in rows:
            billed[r.kind] += r.price
            count[r.kind] += 1
            cpm_imps += r.kind == "impression" and r.campaign in cpm_campaigns
        days = self.cfg.steps * self.cfg.step_hours / 24.0
        budgets = sum(a.daily_budget for a in self.market) * days
        by_day: dict[tuple[str, int], int] = {}  # (campaign, UTC day) -> billed micro-units
        for r in rows:
            key = (r.campaign, int(r.ts // DAY))
            by_day[key] = by_day.get(key, 0) + r.price
        daily = {a.campaign: a.daily_budget * MICROS for a in self.market}
        first, last = int(self.t0 // DAY), int((self.t - 1.0) // DAY)
        campaign_days = [(c, d) for c in daily for d in range(first, last + 1)]
        bound = sum(by_day.get(cd, 0) >= 0.9 * daily[cd[0]] for cd in campaign_days)
        sessions = self.n_requests
        revenue = sum(billed.values()) / MICROS
        tl = self.tally
        return {
            "feed_policy": self.arm.feed_policy,
            "ad_load": self.arm.ad_load,
            "min_gap": self.load.min_gap,
            "first_position": self.load.first_position,
            "sessions": sessions,
            "ad_places": tl.places,
            "ad_impressions": count["impression"],
            "ads_seen": tl.seen,
            "ad_clicks": count["click"],
            "ad_hides": count["hide"],
            "revenue": revenue,
            "revenue_cpm": billed["impression"] / MICROS,
            "revenue_cpc": billed["click"] / MICROS,
            "revenue_per_1k_sessions": 1000.0 * revenue / sessions if sessions else None,
            "impressions_per_session": count["impression"] / sessions if sessions else None,
            "ads_seen_per_session_total": tl.seen / sessions if sessions else None,
            "revenue_per_1k_ads": 1000.0 * revenue / count["impression"] if count["impression"] else None,
            "cpm_price": billed["impression"] / MICROS * 1000.0 / cpm_imps if cpm_imps else None,
            "seen_share": tl.seen / count["impression"] if count["impression"] else None,
            "ctr": count["click"] / count["impression"] if count["impression"] else None,
            "ctr_seen": count["click"] / tl.seen if tl.seen else None,
            "fill_rate": count["impression"] / tl.places if tl.places else None,
            "budget_spent_share": revenue / budgets if budgets else None,
            "budget_bound_share": bound / len(campaign_days) if campaign_days else None,
            "load_violations": tl.violations,
            "pages": tl.pages,
            "sim_served": tl.served,
        }

    def final_extra(self) -> dict[str, Any]:
        return dict(self.closed_summary or {})


def run_ad_simulation(
    cfg: SimConfig,
    arms: Sequence[AdArm],
    folder: Path,
    progress: Progress | None = None,
    settings: Settings | None = None,
    behaviour: AdBehaviour | None = None,
    market: MarketParams | None = None,
    min_gap: int = 0,
    base: Base | None = None,
) -> SimResult:
    """Run every arm on the same seeded society and market (``run_simulation`` with ad worlds); the result's config
    names the arms, the ad behaviour and the market."""
    by_name = {a.name: a for a in arms}
    if len(by_name) != len(arms):
        raise ValueError("two arms with the same name")
    for a in arms:
        if not 0.0 <= a.ad_load <= 0.5:
            raise ValueError(f"ad load {a.ad_load}: must be in [0, 0.5] (the feed policy's max_share bounds)")
    behaviour = behaviour or AdBehaviour()
    mp = market or MarketParams()
    advertisers = make_market(cfg.seed, cfg.users, mp)

    def make(c: SimConfig, name: str, db: Path, b: Base, s: Settings | None) -> World:
        return AdWorld(c, by_name[name], db, b, s, advertisers, behaviour, min_gap, mp.creative_age_days)

    run_cfg = replace(cfg, policies=tuple(by_name), homog_every=0)
    result = run_simulation(run_cfg, folder, progress, base=base, settings=settings, make_world=make)
    result.config["ads"] = {
        "arms": {a.name: {"feed_policy": a.feed_policy, "ad_load": a.ad_load} for a in arms},
        "behaviour": asdict(behaviour),
        "market": asdict(mp),
        "advertisers": [asdict(a) for a in advertisers],
        "min_gap": min_gap,
    }
    return result


__all__ = [
    "AD",
    "AD_TOPICS",
    "AdArm",
    "AdBehaviour",
    "AdOutcome",
    "AdWorld",
    "Advertiser",
    "MarketParams",
    "SimAdService",
    "arm_load",
    "arm_name",
    "arms_for",
    "load_violations",
    "make_market",
    "respond_with_ads",
    "run_ad_simulation",
]
