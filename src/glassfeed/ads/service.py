"""The ad lever's service: campaigns in, ads placed in feed pages, clicks billed, reports and the repository out.

Per page (``place``, installed as the feed's ``ad_server``; under the feed's lock):

1. places: the feed policy's ad load for this page (``placement.ad_places``); none -> the page is unchanged;
2. eligible campaigns: running, budget not spent, paced (``ledger.paced_allowance``), under the person's
   frequency cap, targeting matched (``targeting.matches``), advertiser not hidden by the person, a creative
   not on the page already and not removed by moderation; each advertiser's best campaign only (once per page);
3. rates: each campaign's P(click) / P(engagement) per impression (``AdRanker``: the trained heads when there
   are, else its smoothed rates), quality from the share of its impressions hidden;
4. the generalised second-price auction (``auction.gsp``) with the ad policy's reserve; CPM winners are charged
   now (``ledger.try_charge``: a budget is overspent by at most one price), CPC/CPE winners when clicked;
5. each ad item: the post, its label ("Ad · paid by X · on behalf of Y"), "why this ad" (the matched targeting,
   the auction's inputs, how to change it) and a token its click, engagement or hide comes back with (its index
   among the page's ads and one signature over them all: one HMAC per page, not per ad).

Impressions go to the ad log in the same transaction as the page's own impressions (``FeedService.queue_ad_log``:
one group commit every few ms by the feed's background writer, one commit for both); clicks, engagements and hides
are written before they are acknowledged.

Eligibility reads the campaigns as arrays (``ads.book.CampaignBook``, rebuilt when a campaign changes) and the
campaigns' smoothed rates and quality once per change of the ad log's counts, not per page."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from glassfeed.ads.auction import gsp
from glassfeed.ads.book import CampaignBook
from glassfeed.ads.campaigns import MICROS, Campaign, CampaignSpec, label, to_micros
from glassfeed.ads.ledger import LocalLedger, RedisLedger, SpendLedger, day_of, paced_allowance
from glassfeed.ads.model import AdModel, ad_features, serving_facts, smoothed_rates
from glassfeed.ads.placement import ad_places
from glassfeed.ads.policy import AdPolicy, load_ad_policy
from glassfeed.ads.targeting import Person, lookalike_audience, match_targeting, person, refusals
from glassfeed.feed.policy import Policy
from glassfeed.feed.service import FeedService
from glassfeed.feed.sessions import redis_client
from glassfeed.ingest import IngestError, ItemError
from glassfeed.state import ServingState
from glassfeed.store import ERASED_LABEL, AdCampaignRow, AdLogRow

log = logging.getLogger(__name__)

#: What a person may do with an ad they were shown.
ACTIONS: tuple[str, ...] = ("click", "engagement", "hide")


class AdError(IngestError):
    """A refused ad request: each problem's field and reason (the first is ``field``/``reason``) and the HTTP
    ``status`` (4xx) the API answers with, in the project's error body."""

    def __init__(self, field: str, reason: str, status: int = 422, more: list[tuple[str, str]] | None = None) -> None:
        super().__init__([ItemError(0, f, r) for f, r in (more or [(field, reason)])], status=status)
        self.field, self.reason = field, reason


@dataclass
class CampaignStats:
    """A campaign's counts from the ad log (folded as rows arrive): what the ranker's rates and quality use."""

    impressions: int = 0
    clicks: int = 0
    engagements: int = 0
    hides: int = 0


#: "why this ad"'s ``rates_from``: where P(click) and P(engagement) came from.
RATES_FROM_CAMPAIGN = "the campaign's own rates so far, shrunk towards the platform's priors"
RATES_FROM_MODEL = (
    "the trained ad model (glassfeed ads train): your chance of clicking and engaging, predicted from the "
    "campaign's rates so far, your own clicks on ads, your interests and the ad's topics, whether you follow its "
    "author, its likes, reposts and replies, the hour and the ad's place on the page"
)


class AdRanker:
    """P(click) and P(engagement) of an impression of each campaign: a trained ``AdModel`` (``ads/model.py``) per
    person when one is loaded and the person allows interest-based ads (not a minor, signed in); otherwise the
    campaign's own rates shrunk towards the ad policy's priors by ``prior_strength`` impressions (empirical Bayes),
    the same for every person. "why this ad" says which was used (``predict``'s third value)."""

    def __init__(self, policy: AdPolicy, model: AdModel | None = None) -> None:
        self.policy = policy
        self.model = model

    def rates(self, stats: list[CampaignStats]) -> tuple[np.ndarray, np.ndarray]:
        imp = np.array([s.impressions for s in stats], np.float64)
        clicks = np.array([s.clicks for s in stats], np.float64)
        eng = np.array([s.engagements for s in stats], np.float64)
        return smoothed_rates(imp, clicks, eng, self.policy)

    def features(
        self,
        state: ServingState,
        who: Person,
        camps: list[Campaign],
        posts: list[int],
        stats: list[CampaignStats],
        mine: CampaignStats,
        now: float,
        place: int,
    ) -> np.ndarray:
        """The model's feature rows (``ads.model.AD_FEATURES``) of ``who``'s candidate ads at ``now``."""
        counts = np.array([[s.impressions, s.clicks, s.engagements, s.hides] for s in stats], np.float64)
        own = np.array([mine.impressions, mine.clicks, mine.engagements], np.float64)
        return ad_features(serving_facts(state, who, camps, posts, counts, own, now, place), self.policy)

    def predict(
        self,
        state: ServingState,
        who: Person,
        camps: list[Campaign],
        posts: list[int],
        stats: list[CampaignStats],
        mine: CampaignStats,
        now: float,
        place: int,
        base: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(P(click), P(engagement), where they came from) of each campaign's ad for ``who`` at ``place``;
        ``base``: the campaigns' smoothed rates (``rates(stats)``) when the caller already has them."""
        if self.model is None or not who.user or not who.personalised:
            p_click, p_eng = base if base is not None else self.rates(stats)
            if self.model is None:
                return p_click, p_eng, RATES_FROM_CAMPAIGN
            off = (
                "you are not signed in"
                if not who.user
                else f"you are under {self.policy.targeting.adult_age}"
                if who.minor
                else "you turned off interest-based ads"
            )
            return p_click, p_eng, f"{RATES_FROM_CAMPAIGN} (no personal prediction: {off})"
        p_click, p_eng = self.model.predict(self.features(state, who, camps, posts, stats, mine, now, place))
        return p_click, p_eng, RATES_FROM_MODEL

    def quality(self, stats: list[CampaignStats]) -> np.ndarray:
        a = self.policy.auction
        imp = np.array([s.impressions for s in stats], np.float64)
        hides = np.array([s.hides for s in stats], np.float64)
        return 1.0 / (1.0 + a.hide_weight * hides / (imp + a.hide_prior_impressions))


class AdService:
    """Campaigns, placement, billing, reports and the repository for one store (see the module docstring)."""

    def __init__(self, feed: FeedService, policy: AdPolicy | None = None, *, install: bool = True) -> None:
        self.feed = feed
        self.settings = feed.settings.ads
        self.policy = policy or load_ad_policy(self.settings.policy or None)
        self.ingestor = feed.ingestor
        self.store = feed.store
        self.ranker = AdRanker(self.policy, AdModel.load(feed.models_folder / "ads"))  # `glassfeed ads train`
        self.lock = feed.lock  # one lock with the feed: placement reads the serving state the feed reads
        self.campaigns: dict[str, Campaign] = {}
        self.stats: dict[str, CampaignStats] = defaultdict(CampaignStats)
        self.person_stats: dict[int, CampaignStats] = defaultdict(CampaignStats)  # each person's, every campaign
        self.lookalike: dict[str, frozenset[int]] = {}
        self._book_cache: tuple[int, CampaignBook] | None = None
        self._rates_cache: tuple[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = (
            None
        )
        self._stats_seq = 0  # bumped whenever ad log rows are folded into the counts
        self._version = 0  # bumped whenever a campaign is added or changed: what is derived from them is rebuilt
        self._log_seq = 0
        self._refreshed = 0.0
        now = feed.now()
        seed = self.store.ad_spend(day_of(now) * 86400.0)
        serving = feed.settings.serving
        self.ledger: SpendLedger = (
            RedisLedger(redis_client(serving), serving.redis_prefix, seed, day_of(now))
            if serving.redis_url
            else LocalLedger(seed, day_of(now))
        )
        self._closed = False
        self.refresh(force=True)
        self.ingestor.ad_listeners.append(self._on_ad_rows)
        feed.tail_listeners.append(self.refresh)
        if install and self.settings.enabled:
            feed.ad_server = self.place

    # ------------------------------------------------------------------ state
    def refresh(self, force: bool = False) -> None:
        """Reread the campaigns and fold in the ad log rows written since (by any worker), at most every
        ``[ads] refresh_s`` seconds unless ``force``."""
        if not force and time.monotonic() - self._refreshed < self.settings.refresh_s:
            return
        self._refreshed = time.monotonic()
        rows = self.store.ad_campaigns()
        new = self.store.ad_log(self._log_seq)
        with self.lock:
            old = self.campaigns
            if {(r.id, r.updated_at) for r in rows} != {(c.id, c.updated_at) for c in old.values()}:
                self.campaigns = {r.id: Campaign.from_row(r) for r in rows}
                self._version += 1
            self._fold(new)
            for c in self.campaigns.values():
                if c.targeting.get("lookalike_of") and (
                    c.id not in self.lookalike or old.get(c.id) is None or old[c.id].updated_at != c.updated_at
                ):
                    self.lookalike[c.id] = self._lookalike(c)

    def _lookalike(self, c: Campaign) -> frozenset[int]:
        idx = self.store.user_idx(str(c.targeting["lookalike_of"]))
        if idx is None or idx > self.feed.state.users.n:
            return frozenset()
        return lookalike_audience(self.feed.state, idx, self.policy.targeting.lookalike_share)

    def _fold(self, rows: list[AdLogRow]) -> None:
        for r in rows:
            if r.seq <= self._log_seq:
                continue
            _count(self.stats[r.campaign], r.kind)
            self._stats_seq += 1
            if r.user:
                _count(self.person_stats[r.user], r.kind)
            self._log_seq = r.seq

    def _on_ad_rows(self, kind: str, rows: list[Any]) -> None:
        if kind == "campaign":
            with self.lock:
                for r in rows:
                    c = Campaign.from_row(r)
                    self.campaigns[c.id] = c
                    self._version += 1
                    if c.targeting.get("lookalike_of"):
                        self.lookalike[c.id] = self._lookalike(c)
        else:
            with self.lock:
                self._fold(sorted(rows, key=lambda r: r.seq))

    # ------------------------------------------------------------------ campaigns (advertisers)
    def put_campaign(self, advertiser: str, campaign_id: str, spec: CampaignSpec) -> dict[str, Any]:
        """Create or replace ``advertiser``'s campaign ``campaign_id`` after checking its targeting (refusals name
        the field: special categories, sensitive topics, minors), its creatives (existing posts, not erased) and
        that the id is not another advertiser's."""
        problems = refusals(spec.targeting, self.policy)
        if spec.targeting.lookalike_of is not None and self.store.user_idx(spec.targeting.lookalike_of) is None:
            problems.append(("targeting.lookalike_of", f"unknown account {spec.targeting.lookalike_of!r}"))
        for i, post_id in enumerate(spec.creatives):
            p = self.store.post_idx(post_id)
            if p is None:
                problems.append((f"creatives.{i}", f"unknown post {post_id!r}"))
            elif ERASED_LABEL in (self.store.post_labels([p]).get(p) or []):
                problems.append((f"creatives.{i}", f"post {post_id!r} was erased by its author"))
        if problems:
            raise AdError(problems[0][0], problems[0][1], 422, problems)
        now = time.time()
        with self.lock:
            existing = self.campaigns.get(campaign_id)
        if existing is not None and existing.advertiser != advertiser:
            raise AdError("campaign_id", "belongs to another advertiser; choose another id", 409)
        body = spec.model_dump(mode="json")
        body["targeting"] = {k: v for k, v in spec.targeting.model_dump(mode="json").items() if v}
        created = existing.created_at if existing is not None else now
        self.ingestor.put_ad_campaign(AdCampaignRow(campaign_id, advertiser, body, created, now))
        with self.lock:
            return self.campaigns[campaign_id].public()

    def campaign(self, advertiser: str, campaign_id: str) -> dict[str, Any]:
        with self.lock:
            c = self.campaigns.get(campaign_id)
        if c is None or c.advertiser != advertiser:  # another advertiser's campaign does not exist for this one
            raise AdError("campaign_id", f"unknown campaign {campaign_id!r}", 404)
        out = c.public()
        day, total = self.ledger.spent(c.id, day_of(self.feed.now()))
        out["spent_today"], out["spent_total"] = day / MICROS, total / MICROS
        return out

    def list_campaigns(self, advertiser: str) -> list[dict[str, Any]]:
        with self.lock:
            mine = [c for c in self.campaigns.values() if c.advertiser == advertiser]
        return [c.public() for c in sorted(mine, key=lambda c: c.id)]

    def list_campaign_objects(self, advertiser: str) -> list[Campaign]:
        with self.lock:
            return sorted((c for c in self.campaigns.values() if c.advertiser == advertiser), key=lambda c: c.id)

    def all_campaign_objects(self) -> list[Campaign]:
        with self.lock:
            return sorted(self.campaigns.values(), key=lambda c: c.id)

    def creative_view(self, post_id: str) -> dict[str, Any]:
        """What the repository shows of a creative: its id, author and text (None once erased or pruned)."""
        p = self.store.post_idx(post_id)
        with self.lock:
            st = self.feed.state
            if p is None or p >= st.posts.capacity or st.posts.id_of(p) is None:
                return {"post": post_id, "author": None, "text": None}
            erased = ERASED_LABEL in st.posts.labels_of(p)
            return {
                "post": post_id,
                "author": st.users.id_of(st.posts.author_of(p)),
                "text": None if erased else st.posts.text_of(p),
            }

    # ------------------------------------------------------------------ placement (the feed's ad_server)
    def place(
        self, user: int, pol: Policy, items: list[dict[str, Any]], now: float, request_id: str, page: np.ndarray
    ) -> list[dict[str, Any]]:
        """``items`` with the page's ads in place (see the module docstring); the items are unchanged when no
        campaign wins or the ad load allows none."""
        places = ad_places(len(items), pol.ads, len(self.campaigns))
        if not places:
            return items
        who = person(self.feed.state, user, self.policy, now)
        book = self._book()
        rows, posts, whys = self._eligible(book, who, now, np.asarray(page, np.int64))
        if not len(rows):
            return items
        camps = [book.camps[r] for r in rows.tolist()]
        eligible = list(zip(camps, posts, whys))
        stats = [self.stats[c.id] for c in camps]
        mine = self.person_stats.get(user) or CampaignStats()
        base_click, base_eng, base_quality, _ = self._base_rates(book)
        p_click, p_eng, rates_from = self.ranker.predict(
            self.feed.state, who, camps, posts, stats, mine, now, places[0], base=(base_click[rows], base_eng[rows])
        )
        quality = base_quality[rows]
        rates = book.action_rate(p_click, p_eng, rows)
        bids = book.bid[rows]
        reserve = self.policy.auction.reserve_cpm / 1000.0
        result = gsp(bids, rates, quality, reserve, len(places))
        won = [eligible[i][1] for i in result.winners.tolist()]
        views = dict(zip(won, self.feed.post_views(np.array(won, np.int64)))) if won else {}
        ads: list[dict[str, Any]] = []
        log_rows: list[AdLogRow] = []
        day = day_of(now)
        winners = [
            w
            for w in zip(
                result.winners.tolist(), result.prices.tolist(), result.scores.tolist(), result.runner_up.tolist()
            )
            if self._still_shown(eligible[w[0]][1])  # erased since the state's last look: the place stays a post
        ]
        prices = [
            to_micros(price / 1000.0) if eligible[i][0].bid_unit == "cpm" else to_micros(price)
            for i, price, _, _ in winners
        ]
        cpm = [k for k, (i, *_) in enumerate(winners) if eligible[i][0].bid_unit == "cpm"]
        charged = self.ledger.charge_many(  # CPM winners pay now; one call (one round trip to Redis)
            [(eligible[winners[k][0]][0].id, prices[k], *_budgets(eligible[winners[k][0]][0])) for k in cpm], day
        )
        refused = {k for k, ok in zip(cpm, charged) if not ok}  # another request spent the budget meanwhile
        if user:
            shown = [eligible[i][0].id for k, (i, *_) in enumerate(winners) if k not in refused]
            self.ledger.count_seen(user, shown, day)
        signed: list[list[Any]] = []  # (campaign, post, unit price) of each ad shown, in page order
        for rank, (i, price, score, setter) in enumerate(winners):
            if rank in refused:
                continue  # this place stays a post
            c, post, why = eligible[i]
            unit_price = prices[rank]
            billed = unit_price if c.bid_unit == "cpm" else 0
            log_rows.append(
                AdLogRow(0, "impression", now, c.id, user or None, post, billed, request_id, who.country, None)
            )
            inputs = {
                "bid": c.bid,
                "bid_unit": c.bid_unit,
                "currency": self.policy.currency,
                "p_click": round(float(p_click[i]), 5),
                "p_engagement": round(float(p_eng[i]), 5),
                "quality": round(float(quality[i]), 4),
                "score_per_impression": score,
                "price": price,
                "price_set_by": "the reserve" if setter <= reserve else "the next bidder",
                "bidders": len(camps),
                "rank": rank + 1,
            }
            signed.append([c.id, post, unit_price])
            ads.append(self._ad_item(c, post, why, who, inputs, f"{len(ads)}~", rates_from, views.get(post)))
        if log_rows:
            self._queue(log_rows)
        if ads:  # one signature for the page's ads; each ad's token is its index on it and the signed list
            page_token = self.feed.sign({"k": "ad", "u": user, "r": request_id, "t": now, "a": signed})
            for ad in ads:
                ad["ad"]["token"] += page_token
        out = list(items)
        for place, ad in zip(places, ads):
            out.insert(place, ad)
        return out

    def _book(self) -> CampaignBook:
        """The campaigns as arrays (``ads.book``), rebuilt when a campaign is added or changed."""
        if self._book_cache is None or self._book_cache[0] != self._version:
            self._book_cache = (self._version, CampaignBook.build(self.campaigns.values(), self.store.post_idx))
        return self._book_cache[1]

    def _base_rates(self, book: CampaignBook) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every campaign's smoothed P(click), P(engagement), quality and expected value per impression (bid x the
        rate for its unit x quality): the same for every person, recomputed only when the ad log's counts or the
        campaigns change, not per page."""
        key = (self._version, self._stats_seq, id(self.ranker.policy))
        if self._rates_cache is None or self._rates_cache[0] != key:
            stats = [self.stats[c] for c in book.ids]
            p_click, p_eng = self.ranker.rates(stats)
            quality = self.ranker.quality(stats)
            value = book.bid * book.action_rate(p_click, p_eng) * quality
            self._rates_cache = (key, (p_click, p_eng, quality, value))
        return self._rates_cache[1]

    def _eligible(
        self, book: CampaignBook, who: Person, now: float, on_page: np.ndarray
    ) -> tuple[np.ndarray, list[int], list[list[dict[str, Any]]]]:
        """The book rows of every campaign that may bid for this person now, each advertiser's best only (by
        expected value per impression), ordered by advertiser name, with each one's creative post and matched
        targeting. Schedule, frequency cap, hidden advertisers, budgets and pacing are array operations over the
        campaigns; targeting runs once per distinct targeting among them (``ads.book``); the creatives of those
        that pass are checked together (``_creatives``)."""
        day = day_of(now)
        rows = book.running(now)
        if who.user:
            seen = self.ledger.seen(who.user, [book.ids[r] for r in rows.tolist()], day)
            rows = rows[np.asarray(seen, np.int64) < self.policy.auction.frequency_cap]
        else:
            rows = rows[np.asarray(book.group, np.int64)[rows] == 0] if len(rows) else rows  # nothing is known
        if who.hidden_advertisers and len(rows):
            hidden = [book.advertisers[a] for a in who.hidden_advertisers if a in book.advertisers]
            rows = rows[~np.isin(book.advertiser[rows], hidden)]
        why_of: dict[int, list[dict[str, Any]] | None] = {}
        kept: list[int] = []
        whys: list[list[dict[str, Any]]] = []
        for r in rows.tolist():
            g = book.group[r]
            if g not in why_of:
                why_of[g] = match_targeting(book.camps[r].targeting, book.ids[r], who, self.policy, self.lookalike)
            why = why_of[g]
            if why is not None:
                kept.append(r)
                whys.append(why)
        if not kept:
            return np.zeros(0, np.int64), [], []
        rows = np.array(kept, np.int64)
        spent = np.array(self.ledger.spent_many([book.ids[r] for r in kept], day), np.int64).reshape(-1, 2)
        ok = (spent[:, 1] < book.lifetime[rows]) & (
            spent[:, 0] < paced_allowance(book.daily[rows], now, self.policy.pacing.slack)
        )
        posts = self._creatives(book, rows, on_page, "home" if who.user else "public")
        ok &= posts > 0
        # once per page: each advertiser's campaign with the highest expected value per impression competes (its
        # bid times the campaign's smoothed rate for its unit and its quality), so a CPM bid and a CPC bid of one
        # advertiser are compared in money per impression, not as raw numbers
        value = self._base_rates(book)[3]
        best = book.best_per_advertiser(rows[ok], value[rows[ok]])
        at = {r: k for k, r in enumerate(kept)}
        return best, [int(posts[at[r]]) for r in best.tolist()], [whys[at[r]] for r in best.tolist()]

    def _creatives(self, book: CampaignBook, rows: np.ndarray, page: np.ndarray, surface: str) -> np.ndarray:
        """Each of ``rows``' first creative that exists, is not on the page, not erased and not removed by
        moderation for ``surface`` (0 when it has none): one vectorised pass over every campaign's creatives."""
        st = self.feed.state
        flat = book.creatives
        ok = (flat > 0) & (flat < st.posts.capacity)
        safe = np.where(ok, flat, 0)
        ok &= ~st.posts.removed(safe) & ~st.visibility.dropped(safe, surface)
        if len(page):
            sorted_page = np.sort(page)
            at = np.minimum(np.searchsorted(sorted_page, flat), len(sorted_page) - 1)
            ok &= sorted_page[at] != flat
        first = np.zeros(len(book), np.int64)
        hits = np.flatnonzero(ok)
        if len(hits):  # each campaign's first good position: the first hit at or after its slice's start
            k = np.searchsorted(hits, book.starts)
            inside = (k < len(hits)) & (hits[np.minimum(k, len(hits) - 1)] < book.ends)
            first[inside] = flat[hits[k[inside]]]
        return first[rows]

    def _still_shown(self, post: int) -> bool:
        """A won creative's last checks, run for the winners only: still in the serving state and not erased."""
        st = self.feed.state
        return st.posts.id_of(post) is not None and ERASED_LABEL not in st.posts.labels_of(post)

    def _ad_item(
        self,
        c: Campaign,
        post: int,
        why: list[dict[str, Any]],
        who: Person,
        inputs: dict[str, Any],
        token: str,
        rates_from: str = RATES_FROM_CAMPAIGN,
        view: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ad item: ``view`` (the post as ``FeedService.post_views`` shows it; read here when not given) with
        its label, why and token."""
        if view is None:
            view = self.feed.post_views(np.array([post], np.int64))[0]
        if not who.user:
            basis = "You are not signed in: this ad uses no targeting."
        elif not why:
            basis = "This ad is not targeted: everyone may see it."
        elif not who.personalised:
            why_off = "you are under 18" if who.minor else "you turned off interest-based ads"
            basis = f"Shown without profiling because {why_off}; it matched only on: " + ", ".join(
                w["parameter"] for w in why
            )
        else:
            basis = "You match this campaign's targeting: " + "; ".join(_matched_words(w) for w in why)
        view.update(
            {
                "source": "ad",
                "reason": label(c),
                "ad": {
                    "campaign": c.id,
                    "advertiser": c.advertiser,
                    "paid_by": c.paid_by,
                    "on_behalf_of": c.on_behalf_of,
                    "political": c.political,
                    "label": label(c),
                    "token": token,
                    "why": {
                        "summary": basis,
                        "targeting": why,
                        "auction": inputs,
                        "rates_from": rates_from,
                        "change": {
                            "hide_advertiser": f"hide every ad of {c.advertiser}",
                            "personalised_ads": "turn off interest-based ads: you then see only ads that use no "
                            "profiling",
                        },
                    },
                },
            }
        )
        return view

    # ------------------------------------------------------------------ the person's side
    def interact(self, user_id: str, token: str, action: str) -> dict[str, Any]:
        """A click, engagement or hide on an ad the person was shown (its token): logged before the answer, billed
        for CPC/CPE campaigns (the clearing price, while the budget lasts, once per impression); a hide also hides
        the advertiser for the person."""
        if action not in ACTIONS:
            raise AdError("action", f"expected one of {', '.join(ACTIONS)}")
        user = self.feed.user_idx(user_id)
        shown = _shown_ad(self.feed.verify, token)
        if shown is None:
            raise AdError("token", "invalid or tampered ad token", 400)
        tok, (campaign, post, unit_price) = shown
        if tok.get("u") != user:
            raise AdError("token", "this ad was shown to another person", 403)
        with self.lock:
            c = self.campaigns.get(campaign)
        if c is None:
            raise AdError("token", "names an unknown campaign", 404)
        now = self.feed.now()
        request_id = str(tok["r"])
        done = [
            r
            for r in self.store.ad_log(campaigns=[c.id], kinds=[action], user=user, t_from=float(tok["t"]))
            if r.request_id == request_id
        ]
        if done:  # once per impression: the repeat is acknowledged, not logged or billed again
            return {"action": action, "campaign": c.id, "billed": 0.0, "repeat": True}
        billed = 0
        if c.billed_on == action:
            price = unit_price
            if self.ledger.try_charge(c.id, day_of(now), price, c.daily_budget, c.lifetime_budget):
                billed = price
        if action == "hide":
            self._hide_advertiser(user_id, user, c.advertiser)
        country = person(self.feed.state, user, self.policy, now).country
        self.ingestor.append_ad_log([AdLogRow(0, action, now, c.id, user, post, billed, request_id, country, None)])
        return {"action": action, "campaign": c.id, "billed": billed / MICROS, "repeat": False}

    def _hide_advertiser(self, user_id: str, user: int, advertiser: str) -> None:
        with self.lock:
            prefs = dict(self.feed.state.feedback.prefs(user))
            ads = dict(prefs.get("ads") or {})
            hidden = sorted(set(ads.get("hidden_advertisers") or []) | {advertiser})
            ads["hidden_advertisers"] = hidden
            prefs["ads"] = ads
            self.ingestor.set_prefs(user_id, prefs)

    def ad_settings(self, user_id: str) -> dict[str, Any]:
        user = self.feed.user_idx(user_id)
        with self.lock:
            prefs = self.feed.state.feedback.prefs(user)
            ads = prefs.get("ads") or {}
            who = person(self.feed.state, user, self.policy, self.feed.now())
            return {
                "personalised": bool(ads.get("personalised", True)),
                "hidden_advertisers": list(ads.get("hidden_advertisers") or []),
                "profile": dict(prefs.get("profile") or {}),
                "minor": who.minor,
                "profiling_parameters": list(self.policy.targeting.profiling),
            }

    def save_ad_settings(
        self,
        user_id: str,
        *,
        personalised: bool | None = None,
        hidden_advertisers: list[str] | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change a person's ad settings (``personalised``: false turns off every profiling-based parameter for
        them; ``hidden_advertisers`` replaces the list) and their declared profile (country, region, languages,
        birth year: what targeting by those parameters may use)."""
        user = self.feed.user_idx(user_id)
        with self.lock:
            prefs = dict(self.feed.state.feedback.prefs(user))
            ads = dict(prefs.get("ads") or {})
            if personalised is not None:
                ads["personalised"] = bool(personalised)
            if hidden_advertisers is not None:
                ads["hidden_advertisers"] = sorted(set(hidden_advertisers))
            prefs["ads"] = ads
            if profile is not None:
                prefs["profile"] = {k: v for k, v in profile.items() if v not in (None, [], "")}
            self.ingestor.set_prefs(user_id, prefs)
        return self.ad_settings(user_id)

    # ------------------------------------------------------------------ the ad log
    def _queue(self, rows: list[AdLogRow]) -> None:
        """Queue impressions for the ad log: written with the feed's own impressions, in their transaction
        (``FeedService.queue_ad_log``), by the feed's background writer."""
        self.feed.queue_ad_log(rows)

    def flush(self) -> None:
        """Write every queued ad impression now (with the feed's queued impressions, in one transaction)."""
        self.feed.flush_impressions()

    def close(self) -> None:
        """Stop placing ads and write what is still queued (idempotent)."""
        with self.lock:
            if self.feed.ad_server == self.place:
                self.feed.ad_server = None
        self._closed = True
        self.flush()
        if isinstance(self.ledger, RedisLedger):
            self.ledger.close()


def _shown_ad(
    verify: Callable[[str], dict[str, Any] | None], token: str
) -> tuple[dict[str, Any], tuple[str, int, int]] | None:
    """An ad token read back: ``"<index>~<the page's signed token>"``, the signed payload holding the page's ads
    as (campaign, post, unit price) in order; (payload, that ad) or None when tampered or malformed. The index is
    not signed: it only picks among entries that are."""
    index, sep, signed = token.partition("~")
    tok = verify(signed) if sep and index.isdigit() else None
    if tok is None or tok.get("k") != "ad" or not isinstance(tok.get("a"), list) or int(index) >= len(tok["a"]):
        return None
    entry = tok["a"][int(index)]
    if not (isinstance(entry, list) and len(entry) == 3):
        return None
    return tok, (str(entry[0]), int(entry[1]), int(entry[2]))


def _count(s: CampaignStats, kind: str) -> None:
    if kind == "impression":
        s.impressions += 1
    elif kind == "click":
        s.clicks += 1
    elif kind == "engagement":
        s.engagements += 1
    elif kind == "hide":
        s.hides += 1


def _budgets(c: Campaign) -> tuple[int, int]:
    return c.daily_budget, c.lifetime_budget


def _matched_words(w: dict[str, Any]) -> str:
    you = w["you"] if isinstance(w["you"], str) else ", ".join(map(str, w["you"]))
    return f"{w['parameter'].replace('_', ' ')}: {you}"


__all__ = ["ACTIONS", "RATES_FROM_CAMPAIGN", "RATES_FROM_MODEL", "AdError", "AdRanker", "AdService", "CampaignStats"]
