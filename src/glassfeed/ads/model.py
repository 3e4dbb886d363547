"""The learned ad ranker: P(click) and P(engagement) of one person's impression of one campaign's creative, trained
on the ad log with the feed heads' machinery (one LightGBM binary model per head, Platt-calibrated on a held-out
time slice) and their point-in-time discipline. The auction multiplies the calibrated probability by the bid and
the quality (``auction.gsp``); without a trained model, ``AdRanker.rates`` gives every person the campaign's own
rates shrunk towards the ad policy's priors (``smoothed_rates``, the baseline this model is measured against).

**Examples**: the ad log's impressions at or before ``until`` shown to a known person who allows interest-based ads
and is not a minor then (``targeting.person``). People who turned personalisation off, minors and anonymous readers
are neither trained on nor ranked by the model: their ads use the campaign's rates, and "why this ad" says so.
**Labels**: ``click`` when the same person clicked the same campaign's ad of the same ``request_id`` (at or before
``until``), likewise ``engagement``.

**Features** (``AD_FEATURES``, assembled by ``ad_features`` from ``AdFacts`` in one vectorised computation for both
paths) read only what was known before the impression (rows strictly earlier):

- the campaign's smoothed click and engagement rates, impressions and smoothed share hidden, from its ad log rows;
- the person's own ad impressions and smoothed click and engagement rates over every campaign;
- topic overlap: how many of the person's interests (``Person.topics``: onboarding topics and "more of" topics,
  never a sensitive one) are among the campaign's targeting topics and its creative's topics, and whether the
  creative's primary topic is one of them;
- whether the person follows the creative's author, and the creative's organic likes, reposts and replies;
- the objective (one-hot), the hour of the day (UTC) and the ad's place on the page.

``training_facts`` computes them from the logs (the event log for follows and organic counts, rewound to each
impression's time; the ad log for the counts); ``serving_facts`` from the serving state and the counts the ad
service folded from the ad log. At serving every campaign is asked at the page's first ad place, as the feed's
heads are asked at slot 0: the auction compares campaigns at one place. tests/test_ads_model.py checks that both
give the same rows for the same (person, campaign, time), with the serving side built from the log before it.

Known gaps: a person's interests and ad settings, a campaign's targeting and a post's topics are read as they are
now (the store keeps no history of them), as the feed's training replay reads the users and posts tables.
"""

from __future__ import annotations

import json
import math
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from glassfeed.ads.campaigns import OBJECTIVES, Campaign
from glassfeed.ads.policy import AdPolicy
from glassfeed.ads.targeting import Person, person
from glassfeed.domain import EventKind
from glassfeed.feed.heads import booster_params, fit_platt
from glassfeed.feed.policy import AdLoad, Policy, builtin_policies
from glassfeed.feed.sessions import parse_request_id
from glassfeed.feed.train import auc, logloss
from glassfeed.settings import AdsSettings, StateSettings
from glassfeed.state import ServingState
from glassfeed.state.counters import C
from glassfeed.store import AdLogRow, Store

#: The ad log kinds a campaign's counts are kept for (``AdFacts.campaign``'s columns, in order).
CAMPAIGN_KINDS: tuple[str, ...] = ("impression", "click", "engagement", "hide")
#: The ad log kinds a person's own counts are kept for (``AdFacts.person``'s columns, in order).
PERSON_KINDS: tuple[str, ...] = ("impression", "click", "engagement")
#: The creative's organic engagement counted (``AdFacts.organic``'s columns): the serving state's per-post totals.
ORGANIC: tuple[str, ...] = ("like", "repost", "reply")
_ORGANIC_KINDS: dict[str, tuple[EventKind, ...]] = {
    "like": (EventKind.LIKE,),
    "repost": (EventKind.REPOST,),
    "reply": (EventKind.REPLY, EventKind.QUOTE),  # the state counts quotes as replies (``state.counters``)
}
#: A person's own ad rates are shrunk towards the policy's priors by this many impressions (a person sees few ads,
#: a campaign many: its rates use ``[ranker] prior_strength``).
PERSON_PRIOR_STRENGTH = 10.0
#: The features, in the model's column order (defined once; saved with the model, which is refused for others).
AD_FEATURES: tuple[str, ...] = (
    "campaign_ctr",
    "campaign_engagement_rate",
    "campaign_log_impressions",
    "campaign_hide_rate",
    "person_ctr",
    "person_engagement_rate",
    "person_log_impressions",
    "topic_overlap",
    "creative_topic_match",
    "follows_author",
    "creative_log_likes",
    "creative_log_reposts",
    "creative_log_replies",
    *(f"objective_{o}" for o in OBJECTIVES),
    "hour",
    "place",
)
AF = {name: i for i, name in enumerate(AD_FEATURES)}
HEADS: tuple[str, ...] = ("click", "engagement")
FORMAT = 1
#: A head is fitted only with at least this many positives (and negatives) in its fit slice and
#: ``MIN_CALIBRATION_POSITIVES`` in its calibration slice, which early-stops its trees and calibrates them; otherwise it
#: predicts the campaign's smoothed rate (the baseline). Measured (docs/ads.md, "The ad ranker"): on small logs a head
#: given all its ``trees`` without early stopping ranked worse than the baseline.
MIN_POSITIVES = 5
MIN_CALIBRATION_POSITIVES = 20
EARLY_STOPPING_ROUNDS = 20


def smoothed_rates(
    impressions: np.ndarray,
    clicks: np.ndarray,
    engagements: np.ndarray,
    policy: AdPolicy,
    strength: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """P(click), P(engagement) per impression: the counts' rates shrunk towards the ad policy's priors by
    ``strength`` impressions (empirical Bayes; default ``[ranker] prior_strength``)."""
    r = policy.ranker
    k = r.prior_strength if strength is None else strength
    imp = np.asarray(impressions, np.float64)
    return (
        (np.asarray(clicks, np.float64) + k * r.prior_click) / (imp + k),
        (np.asarray(engagements, np.float64) + k * r.prior_engagement) / (imp + k),
    )


def first_place(load: AdLoad, ordinal: int = 0) -> int:
    """The place (0-based, among the page's items with the ads in them) of a page's ``ordinal``-th ad under
    ``load``: ``placement.ad_places``'s formula (the page long enough to hold it)."""
    return load.first_position - 1 + ordinal * (load.min_gap + 1)


@dataclass
class AdFacts:
    """What ``ad_features`` reads, one row per (person, campaign, time): counts known before that time."""

    campaign: np.ndarray  # (n, len(CAMPAIGN_KINDS)) the campaign's ad log rows of each kind
    person: np.ndarray  # (n, len(PERSON_KINDS)) the person's own ad log rows of each kind, every campaign
    topic_overlap: np.ndarray  # (n,) the person's topics among the campaign's targeting and creative topics
    creative_topic_match: np.ndarray  # (n,) the creative's primary topic is one of the person's
    follows_author: np.ndarray  # (n,) the person follows the creative's author
    organic: np.ndarray  # (n, len(ORGANIC)) the creative's likes, reposts, replies (and quotes)
    objective: np.ndarray  # (n,) the campaign's objective (``campaigns.OBJECTIVES``)
    ts: np.ndarray  # (n,) the impression's time
    place: np.ndarray  # (n,) the ad's place on the page (0-based; NaN: unknown)


def ad_features(f: AdFacts, policy: AdPolicy) -> np.ndarray:
    """The (n, len(AD_FEATURES)) feature rows of ``f`` (the same computation for training and serving)."""
    n = len(f.ts)
    X = np.zeros((n, len(AD_FEATURES)), np.float64)
    camp = np.asarray(f.campaign, np.float64).reshape(n, len(CAMPAIGN_KINDS))
    imp, clicks, eng, hides = camp.T
    X[:, AF["campaign_ctr"]], X[:, AF["campaign_engagement_rate"]] = smoothed_rates(imp, clicks, eng, policy)
    X[:, AF["campaign_log_impressions"]] = np.log1p(imp)
    X[:, AF["campaign_hide_rate"]] = hides / (imp + policy.auction.hide_prior_impressions)
    mine = np.asarray(f.person, np.float64).reshape(n, len(PERSON_KINDS))
    X[:, AF["person_ctr"]], X[:, AF["person_engagement_rate"]] = smoothed_rates(
        mine[:, 0], mine[:, 1], mine[:, 2], policy, PERSON_PRIOR_STRENGTH
    )
    X[:, AF["person_log_impressions"]] = np.log1p(mine[:, 0])
    X[:, AF["topic_overlap"]] = f.topic_overlap
    X[:, AF["creative_topic_match"]] = f.creative_topic_match
    X[:, AF["follows_author"]] = f.follows_author
    organic = np.log1p(np.asarray(f.organic, np.float64).reshape(n, len(ORGANIC)))
    for j, name in enumerate(("creative_log_likes", "creative_log_reposts", "creative_log_replies")):
        X[:, AF[name]] = organic[:, j]
    objective = np.asarray(f.objective, dtype=object)
    for o in OBJECTIVES:
        X[:, AF[f"objective_{o}"]] = objective == o
    X[:, AF["hour"]] = np.floor((np.asarray(f.ts, np.float64) % 86400.0) / 3600.0)
    X[:, AF["place"]] = f.place
    return X


def campaign_topics(c: Campaign, state: ServingState, post: int) -> tuple[frozenset[str], str | None]:
    """(the campaign's targeting topics with its creative's topics, the creative's primary topic or None)."""
    own = state.posts.topics_of(post) if 0 < post < state.posts.capacity else []
    return frozenset(c.targeting.get("topics") or ()) | frozenset(own), (own[0] if own else None)


def _topic_facts(
    people: Sequence[frozenset[str]], topics: Sequence[tuple[frozenset[str], str | None]]
) -> tuple[np.ndarray, np.ndarray]:
    overlap = np.fromiter((len(p & t) for p, (t, _) in zip(people, topics)), np.float64, len(people))
    match = np.fromiter((m is not None and m in p for p, (_, m) in zip(people, topics)), np.float64, len(people))
    return overlap, match


def serving_facts(
    state: ServingState,
    who: Person,
    campaigns: Sequence[Campaign],
    posts: Sequence[int],
    campaign_counts: np.ndarray,
    person_counts: np.ndarray,
    now: float,
    place: int,
) -> AdFacts:
    """``AdFacts`` of one person's candidate ads (campaign, creative post) at ``now``, from the serving state and
    the ad log counts the ad service folded (``campaign_counts``: (n, len(CAMPAIGN_KINDS)); ``person_counts``:
    (len(PERSON_KINDS),)), every campaign asked at ``place``."""
    n = len(campaigns)
    p = np.asarray(posts, np.int64)
    authors = state.posts.author(p)
    following = state.graph.following(who.user)
    totals = state.counters.totals(p)
    overlap, match = _topic_facts([who.topics] * n, [campaign_topics(c, state, int(q)) for c, q in zip(campaigns, p)])
    return AdFacts(
        campaign=np.asarray(campaign_counts, np.float64).reshape(n, len(CAMPAIGN_KINDS)),
        person=np.tile(np.asarray(person_counts, np.float64), (n, 1)),
        topic_overlap=overlap,
        creative_topic_match=match,
        follows_author=np.fromiter((int(a) in following for a in authors.tolist()), np.float64, n),
        organic=totals[:, [C[k] for k in ORGANIC]].astype(np.float64),
        objective=np.array([c.objective for c in campaigns], dtype=object),
        ts=np.full(n, float(now)),
        place=np.full(n, float(place)),
    )


# ---------------------------------------------------------------------- training examples (point in time)
def _count_before(row_g: np.ndarray, row_t: np.ndarray, q_g: np.ndarray, q_t: np.ndarray) -> np.ndarray:
    """For each query (group, time): how many rows of the same group have a time strictly before it."""
    n_r = len(row_g)
    g = np.concatenate([np.asarray(row_g, np.int64), np.asarray(q_g, np.int64)])
    t = np.concatenate([np.asarray(row_t, np.float64), np.asarray(q_t, np.float64)])
    is_row = np.r_[np.ones(n_r, np.int64), np.zeros(len(q_g), np.int64)]
    order = np.lexsort((is_row, t, g))  # by group, then time; at a tie the query comes first (strictly before)
    r_sorted = is_row[order]
    c = np.cumsum(r_sorted)
    gs = g[order]
    start = np.r_[True, gs[1:] != gs[:-1]] if len(gs) else np.zeros(0, bool)
    base = (c - r_sorted)[start]
    counts = c - base[np.cumsum(start) - 1]
    out = np.zeros(len(q_g), np.int64)
    q = order >= n_r
    out[order[q] - n_r] = counts[q]
    return out


def _follows_at(store: Store, users: np.ndarray, authors: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Whether ``users[i]`` followed ``authors[i]`` just before ``ts[i]``: the pair's last follow or unfollow event
    before it decides; with none before it, the first one after it (an unfollow: they did; a follow: they did not);
    with none at all, a current follow edge created before it."""
    wanted = set(zip(users.tolist(), authors.tolist()))
    b = store.events_in_window(kinds=[EventKind.FOLLOW, EventKind.UNFOLLOW])
    history: dict[tuple[int, int], tuple[list[float], list[bool]]] = {}
    keep = np.isin(b.target_user, np.unique(authors))
    for u, v, t, k in zip(b.user[keep].tolist(), b.target_user[keep].tolist(), b.ts[keep].tolist(), b.kind[keep]):
        if (u, v) in wanted:
            times, follows = history.setdefault((u, v), ([], []))
            times.append(t)
            follows.append(int(k) == int(EventKind.FOLLOW))
    src, dst, created = store.load_edges("follows")
    edge = {(int(s), int(d)): float(c) for s, d, c in zip(src, dst, created) if (int(s), int(d)) in wanted}
    out = np.zeros(len(users), np.float64)
    for i, (u, v, t) in enumerate(zip(users.tolist(), authors.tolist(), ts.tolist())):
        h = history.get((u, v))
        if h is None:
            out[i] = (u, v) in edge and edge[(u, v)] < t
            continue
        k = bisect_left(h[0], t)  # events strictly before t: h[0][:k] (in time order: events_in_window's)
        out[i] = h[1][k - 1] if k > 0 else not h[1][0]
    return out


def replay_state(store: Store, config: StateSettings | None = None) -> ServingState:
    """What training reads of people and posts: users (interests), posts (authors, topics) and preferences (their
    ad settings and profile), without events (``ServingState.for_replay``)."""
    st = ServingState.for_replay(store, config)
    st.feedback.load(store)
    return st


@dataclass
class AdExamples:
    """Labelled impressions in time order (ts, then the ad log's seq) with their point-in-time features."""

    X: np.ndarray
    y_click: np.ndarray
    y_engagement: np.ndarray
    ts: np.ndarray
    users: np.ndarray
    campaigns: np.ndarray
    seq: np.ndarray


def training_facts(
    store: Store,
    policy: AdPolicy,
    until: float,
    state: ServingState | None = None,
    policies: Mapping[str, Policy] | None = None,
) -> tuple[AdFacts, dict[str, np.ndarray]]:
    """(``AdFacts`` of every example impression, its columns ``users``, ``campaigns``, ``seq``, ``click``,
    ``engagement``) from the logs as they were before each impression (see the module docstring). ``state``: people
    and posts (default ``replay_state(store)``); ``policies``: the feed policies whose ad load places a logged ad
    (by its request id's policy tag; default the packaged ones; another: the place is unknown, NaN)."""
    st = state if state is not None else replay_state(store)
    pols = builtin_policies() if policies is None else policies
    rows = [r for r in store.ad_log() if r.ts <= until]
    camps = {r.id: Campaign.from_row(r) for r in store.ad_campaigns()}
    code = {c: i for i, c in enumerate(sorted({r.campaign for r in rows}))}
    kind = np.array([r.kind for r in rows], dtype=object)
    ts = np.array([r.ts for r in rows], np.float64)
    camp_code = np.array([code[r.campaign] for r in rows], np.int64)
    user = np.array([r.user if r.user is not None else -1 for r in rows], np.int64)
    answered: dict[str, set[tuple[int, str, str]]] = {h: set() for h in HEADS}
    for r in rows:
        if r.kind in answered and r.user is not None and r.request_id is not None:
            answered[r.kind].add((r.user, r.campaign, r.request_id))
    # the examples: impressions of a known person, creative and request, of a campaign that still exists
    ordinal: dict[tuple[str, int], int] = defaultdict(int)
    ex: list[tuple[AdLogRow, float, Person]] = []
    people: dict[tuple[int, int], Person] = {}
    for r in sorted(rows, key=lambda r: r.seq):
        if r.kind != "impression" or r.user is None or r.request_id is None or r.post is None:
            continue
        j = ordinal[(r.request_id, r.user)]
        ordinal[(r.request_id, r.user)] += 1
        if r.campaign not in camps or not 0 < r.user <= st.users.n or not 0 < r.post < st.posts.capacity:
            continue
        year = time.gmtime(r.ts).tm_year  # a person's age band changes with the calendar year only
        who = people.get((r.user, year))
        if who is None:
            who = people[(r.user, year)] = person(st, r.user, policy, r.ts)
        if not who.personalised:
            continue  # no profiling-based prediction for them: neither trained on nor ranked by the model
        pol = pols.get(parse_request_id(r.request_id).policy)
        ex.append((r, first_place(pol.ads, j) if pol is not None else math.nan, who))
    ex.sort(key=lambda e: (e[0].ts, e[0].seq))
    e_rows = [e[0] for e in ex]
    n = len(e_rows)
    q_ts = np.array([r.ts for r in e_rows], np.float64)
    q_camp = np.array([code[r.campaign] for r in e_rows], np.int64)
    q_user = np.array([r.user for r in e_rows], np.int64)
    q_post = np.array([r.post for r in e_rows], np.int64)
    campaign = np.zeros((n, len(CAMPAIGN_KINDS)))
    for j, k in enumerate(CAMPAIGN_KINDS):
        m = kind == k
        campaign[:, j] = _count_before(camp_code[m], ts[m], q_camp, q_ts)
    mine = np.zeros((n, len(PERSON_KINDS)))
    for j, k in enumerate(PERSON_KINDS):
        m = (kind == k) & (user >= 0)
        mine[:, j] = _count_before(user[m], ts[m], q_user, q_ts)
    organic = np.zeros((n, len(ORGANIC)))
    if n:
        kinds = [k for ks in _ORGANIC_KINDS.values() for k in ks]
        ev = store.events_in_window(t_to=until, kinds=kinds)
        on = np.isin(ev.post, np.unique(q_post))
        for j, name in enumerate(ORGANIC):
            m = on & np.isin(ev.kind, [int(k) for k in _ORGANIC_KINDS[name]])
            organic[:, j] = _count_before(ev.post[m], ev.ts[m], q_post, q_ts)
    authors = st.posts.author(q_post) if n else np.zeros(0, np.int64)
    topics = [campaign_topics(camps[r.campaign], st, int(r.post or 0)) for r in e_rows]
    overlap, match = _topic_facts([e[2].topics for e in ex], topics)
    facts = AdFacts(
        campaign=campaign,
        person=mine,
        topic_overlap=overlap,
        creative_topic_match=match,
        follows_author=_follows_at(store, q_user, authors, q_ts) if n else np.zeros(0),
        organic=organic,
        objective=np.array([camps[r.campaign].objective for r in e_rows], dtype=object),
        ts=q_ts,
        place=np.array([e[1] for e in ex], np.float64),
    )
    cols = {
        "users": q_user,
        "campaigns": np.array([r.campaign for r in e_rows], dtype=object),
        "seq": np.array([r.seq for r in e_rows], np.int64),
        **{h: np.array([(r.user, r.campaign, r.request_id) in answered[h] for r in e_rows], bool) for h in HEADS},
    }
    return facts, cols


def examples(
    store: Store,
    policy: AdPolicy,
    until: float,
    state: ServingState | None = None,
    policies: Mapping[str, Policy] | None = None,
) -> AdExamples:
    """Every example impression at or before ``until`` with its features and labels, in time order."""
    facts, cols = training_facts(store, policy, until, state, policies)
    return AdExamples(
        X=ad_features(facts, policy),
        y_click=cols["click"],
        y_engagement=cols["engagement"],
        ts=facts.ts,
        users=cols["users"],
        campaigns=cols["campaigns"],
        seq=cols["seq"],
    )


# ---------------------------------------------------------------------- the model
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


#: Per head, the feature column its untrained fallback predicts (the campaign's smoothed rate: the baseline).
_BASELINE = {"click": AF["campaign_ctr"], "engagement": AF["campaign_engagement_rate"]}


class AdModel:
    """P(click) and P(engagement) heads over ``AD_FEATURES``: one LightGBM binary model each, trained on the rows
    before the last ``calibration`` share (rows in time order); trees are added (at most ``trees``) until that last
    share's log-loss has not improved for ``EARLY_STOPPING_ROUNDS`` rounds, and the head is Platt-calibrated on it.
    A head with fewer than ``MIN_POSITIVES`` positives or negatives to fit on, or ``MIN_CALIBRATION_POSITIVES``
    positives to stop and calibrate on, stays untrained and predicts the campaign's smoothed rate (the
    empirical-Bayes baseline). scikit-learn conventions: ``__init__`` stores the parameters; ``fit``
    returns self and sets ``boosters_``, ``calibration_``, ``base_rate_`` and ``n_examples_``."""

    def __init__(
        self,
        trees: int = 200,
        leaves: int = 15,
        learning_rate: float = 0.05,
        min_child_samples: int = 50,
        calibration: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.trees = trees
        self.leaves = leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.calibration = calibration
        self.seed = seed

    @classmethod
    def from_settings(cls, s: AdsSettings) -> AdModel:
        return cls(s.model_trees, s.model_leaves, s.model_learning_rate, s.model_min_child_samples)

    def get_params(self) -> dict[str, Any]:
        return {
            "trees": self.trees,
            "leaves": self.leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "calibration": self.calibration,
            "seed": self.seed,
        }

    def fit(self, X: np.ndarray, y_click: np.ndarray, y_engagement: np.ndarray) -> AdModel:
        """Fit both heads on ``X`` (rows in time order) and their labels."""
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != len(AD_FEATURES):
            raise ValueError(f"X must have {len(AD_FEATURES)} columns (AD_FEATURES), not {X.shape}")
        n = len(X)
        cut = round(n * (1.0 - self.calibration))
        params = booster_params("binary", self.leaves, self.learning_rate, self.min_child_samples, self.seed)
        self.boosters_: dict[str, lgb.Booster] = {}
        self.calibration_: dict[str, tuple[float, float]] = {}
        self.base_rate_: dict[str, float] = {}
        for head, labels in zip(HEADS, (y_click, y_engagement)):
            y = np.asarray(labels, np.float64)
            if len(y) != n:
                raise ValueError(f"y_{head} must have one label per row of X")
            self.base_rate_[head] = float(y.mean()) if n else 0.0
            y_fit, y_cal = y[:cut], y[cut:]
            if (
                min(y_fit.sum(), len(y_fit) - y_fit.sum(), len(y_cal) - y_cal.sum()) < MIN_POSITIVES
                or y_cal.sum() < MIN_CALIBRATION_POSITIVES
            ):
                continue  # too few to learn from or to stop and calibrate on: the campaign's smoothed rate
            ds = lgb.Dataset(X[:cut], y_fit, feature_name=list(AD_FEATURES), free_raw_data=True)
            b = lgb.train(
                params,
                ds,
                num_boost_round=self.trees,
                valid_sets=[lgb.Dataset(X[cut:], y_cal, reference=ds)],
                callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            )
            booster = lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration))
            self.boosters_[head] = booster
            self.calibration_[head] = fit_platt(np.asarray(booster.predict(X[cut:])), y_cal)
        self.n_examples_ = n
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated P(click), P(engagement)) per row of ``X``."""
        X = np.asarray(X, np.float64)
        out = []
        for head in HEADS:
            b = self.boosters_.get(head)
            if b is None or not len(X):
                out.append(X[:, _BASELINE[head]].copy())
                continue
            a, c = self.calibration_[head]
            out.append(_sigmoid(a * _logit(np.asarray(b.predict(X, num_threads=1))) + c))
        return out[0], out[1]

    @property
    def trees_(self) -> dict[str, int]:
        """Trees each trained head evaluates per prediction."""
        return {h: int(b.num_trees()) for h, b in self.boosters_.items()}

    def save(self, folder: str | Path) -> Path:
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        for head in HEADS:
            f = d / f"{head}.txt"
            if head in self.boosters_:
                self.boosters_[head].save_model(str(f))
            elif f.exists():
                f.unlink()
        meta = {
            "format": FORMAT,
            "features": list(AD_FEATURES),
            "params": self.get_params(),
            "calibration": self.calibration_,
            "base_rate": self.base_rate_,
            "heads": sorted(self.boosters_),
            "trees": self.trees_,
            "n_examples": self.n_examples_,
        }
        (d / "ad_model.json").write_text(json.dumps(meta, indent=1))
        return d

    @classmethod
    def load(cls, folder: str | Path) -> AdModel | None:
        """The model saved in ``folder``; None when there is none, or it was made for other features."""
        d = Path(folder)
        f = d / "ad_model.json"
        if not f.is_file():
            return None
        meta = json.loads(f.read_text())
        if meta.get("format") != FORMAT or meta.get("features") != list(AD_FEATURES):
            return None
        m = cls(**meta["params"])
        m.boosters_ = {h: lgb.Booster(model_file=str(d / f"{h}.txt")) for h in meta["heads"]}
        m.calibration_ = {h: (float(v[0]), float(v[1])) for h, v in meta["calibration"].items()}
        m.base_rate_ = {h: float(v) for h, v in meta["base_rate"].items()}
        m.n_examples_ = int(meta["n_examples"])
        return m


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    a, ll = auc(y, p), logloss(y.astype(np.float64), p)
    return {"auc": None if math.isnan(a) else round(a, 4), "log_loss": None if math.isnan(ll) else round(ll, 5)}


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Calibration by predicted probability: ``bins`` groups of about equal size in order of ``p``, each with its
    count, mean prediction and observed rate."""
    order = np.argsort(p, kind="stable")
    return [
        {"n": len(at), "mean_predicted": round(float(p[at].mean()), 5), "observed_rate": round(float(y[at].mean()), 5)}
        for at in np.array_split(order, bins)
        if len(at)
    ]


def train_ad_model(
    store: Store,
    policy: AdPolicy,
    until: float,
    holdout: float = 0.2,
    *,
    model: AdModel | None = None,
    state: ServingState | None = None,
    policies: Mapping[str, Policy] | None = None,
) -> tuple[AdModel, dict[str, Any]]:
    """Fit ``model`` (default ``AdModel()``'s parameters) on the examples before the last ``holdout`` share (by
    time), report each head's holdout AUC and log-loss beside the empirical-Bayes baseline's (the campaign's
    smoothed rate at the impression's time: ``AdRanker.rates``), its mean prediction and the observed rate; then
    refit on every example and return that model with the report."""
    proto = model or AdModel()
    ex = examples(store, policy, until, state, policies)
    n = len(ex.ts)
    cut = round(n * (1.0 - holdout))
    report: dict[str, Any] = {
        "examples": n,
        "holdout": n - cut,
        "people": len(np.unique(ex.users)),
        "campaigns": len(set(ex.campaigns.tolist())),
        "until": until,
        "heads": {},
    }
    if cut > 0 and n - cut > 0:
        early = AdModel(**proto.get_params()).fit(ex.X[:cut], ex.y_click[:cut], ex.y_engagement[:cut])
        pred = dict(zip(HEADS, early.predict(ex.X[cut:])))
        for head, y_all in zip(HEADS, (ex.y_click, ex.y_engagement)):
            y = y_all[cut:]
            base = ex.X[cut:, _BASELINE[head]]
            report["heads"][head] = {
                "trained": head in early.boosters_,
                "positives": int(y_all.sum()),
                "holdout_positives": int(y.sum()),
                "observed_rate": round(float(y.mean()), 5),
                "model": {
                    **_scores(y, pred[head]),
                    "mean_predicted": round(float(pred[head].mean()), 5),
                    "reliability": reliability(y, pred[head]),
                },
                "baseline": {**_scores(y, base), "mean_predicted": round(float(base.mean()), 5)},
            }
    final = AdModel(**proto.get_params()).fit(ex.X, ex.y_click, ex.y_engagement)
    report["trees"] = final.trees_
    return final, report


__all__ = [
    "AD_FEATURES",
    "CAMPAIGN_KINDS",
    "PERSON_KINDS",
    "AdExamples",
    "AdFacts",
    "AdModel",
    "ad_features",
    "campaign_topics",
    "examples",
    "first_place",
    "reliability",
    "replay_state",
    "serving_facts",
    "smoothed_rates",
    "train_ad_model",
]
