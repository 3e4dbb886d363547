"""THE feed, top to bottom: sources -> filters -> features -> light ranker -> heads -> policy score ->
adjustments -> exploration -> diversity, breadth & balance -> page. Batch-first: one call ranks many users (the
server passes one, the simulator thousands), so every consumer runs exactly this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glassfeed.feed.breadth import breadth_pages
from glassfeed.feed.candidates import Candidates, top_k_per_row
from glassfeed.feed.explore import explore
from glassfeed.feed.features import LIGHT_FEATURES, PairScorer, pair_context, pair_features
from glassfeed.feed.filters import apply_filters
from glassfeed.feed.heads import EngagementHeads, LightRanker, RequestRanker
from glassfeed.feed.mixing import ADJUSTMENTS, apply_adjustments, assemble_pages
from glassfeed.feed.policy import HEADS, Policy
from glassfeed.feed.sources import SOURCE_FUNCS, CollaborativeIndex, ContentIndex, EaseRetriever, recent_posts
from glassfeed.state import ServingState


@dataclass
class Models:
    """Trained parts the pipeline uses; ``heads`` untrained -> reverse-chronological fallback."""

    heads: EngagementHeads = field(default_factory=EngagementHeads)
    light: LightRanker = field(default_factory=LightRanker)
    collab: CollaborativeIndex = field(default_factory=CollaborativeIndex)
    ease: EaseRetriever | None = None  # set when the collaborative source was trained with EASE
    ranker: RequestRanker = field(default_factory=RequestRanker)  # for policies with ranker = "lambdarank"
    content: ContentIndex = field(default_factory=ContentIndex)  # the content source's index over recent posts

    @property
    def scorer(self) -> PairScorer:
        """The collaborative model behind the heads' ``collab_score`` feature: the one the source ranks by."""
        return self.ease if self.ease is not None else self.collab


@dataclass
class Pages:
    """Selected items for a batch of users, flat and in page order (``row`` = index into the user batch)."""

    row: np.ndarray
    post: np.ndarray
    score: np.ndarray
    source: np.ndarray
    source_score: np.ndarray
    via: np.ndarray
    in_network: np.ndarray  # bool: the user follows the author or a followed account reposted it
    probs: np.ndarray | None  # (n, len(policy.HEADS)) or None for recency ranking
    features: np.ndarray | None  # (n, len(FEATURES)) rows the heads scored, or None for recency ranking
    deltas: np.ndarray  # (n, len(ADJUSTMENTS))
    interstitial: np.ndarray
    ranker: str
    dropped: dict[str, int]
    n_candidates: int
    remaining: np.ndarray  # per user row: eligible candidates not placed on this page (0 = end of feed)
    fallback_reason: str | None = None

    def for_row(self, r: int) -> np.ndarray:
        return np.flatnonzero(self.row == r)


def rank(
    state: ServingState,
    models: Models,
    users: np.ndarray,
    policy: Policy,
    now: float,
    limit: int = 50,
    served: list[set[int]] | None = None,
    surface: str = "home",
) -> Pages:
    """Rank a page of up to ``limit`` posts for each user in ``users`` (distinct) under ``policy`` at ``now``, for
    ``surface`` (``state.SURFACES``: which moderation outcome applies)."""
    users = np.asarray(users, np.int64)
    served = served if served is not None else [set() for _ in users]

    # 1. candidate sources, deduplicated (~1,000 per user)
    cands = candidates(state, models, users, policy, now)
    n_candidates = len(cands)
    ctx = pair_context(  # authors, in-network, "see less", which sources found it: once per request
        state, users, cands.row, cands.post, cands.extra
    )

    # 2. filters: moderation, own, age, blocks/mutes, served/seen, muted words, see-less fatigue
    kept, dropped, fatigue, interstitial = apply_filters(state, users, cands, ctx, policy, now, served, surface)
    cands, ctx = cands.take(kept), ctx.take(kept)

    # 3. score: recency for non-profiled policies (or when no model is trained), else light ranker + heads (or
    # the learning-to-rank model, for a policy with ranker = "lambdarank")
    probs = X = learned = None
    unweighted: tuple[str, ...] = ()  # heads the score does not use: predicted for the page's rows only
    fallback = (
        None
        if policy.ranker == "recency"
        or (models.heads.trained and (policy.ranker != "lambdarank" or models.ranker.trained))
        else "the engagement models are not trained yet, so this page is newest first"
    )
    if policy.ranker != "recency" and fallback is None:
        try:
            scorer = models.scorer
            light = pair_features(state, ctx, now, only=LIGHT_FEATURES, scorer=scorer)
            keep = top_k_per_row(cands.row, models.light.score(light), policy.mixing.light_ranker_keep)
            cands, ctx = cands.take(keep), ctx.take(keep)
            X = pair_features(state, ctx, now, scorer=scorer, light=light[keep])
            if policy.ranker == "lambdarank":
                learned = 1.0 / (1.0 + np.exp(-models.ranker.score(X)))  # in (0, 1), so the multipliers apply
            else:
                weights = policy.weight_vector()
                unweighted = tuple(h for h, w in zip(HEADS, weights, strict=True) if w == 0.0)
                probs = models.heads.predict(X, skip=unweighted)
                learned = probs @ np.asarray(weights)
            fatigue, interstitial = fatigue[keep], interstitial[keep]
        except Exception as e:  # X's rule: if ranking fails, serve reverse-chronological rather than nothing
            probs = X = learned = None
            fallback = f"ranking failed ({type(e).__name__}), so this page is newest first"
    score = recency_score(now - state.posts.created(cands.post)) if learned is None else learned

    # 4. policy adjustments (multiplicative, recorded as additive deltas for the explanation)
    deltas = np.zeros((len(cands), len(ADJUSTMENTS)))
    if learned is not None:
        score, deltas = apply_adjustments(
            score,
            policy,
            ctx.in_network,
            state.posts.is_reply(cands.post),
            state.posts.divisiveness(cands.post),
            state.counters.bridging(cands.post),
            fatigue,
            topic_preference(state, users, cands, policy),
            state.visibility.factor(cands.post, surface) if state.visibility.any else None,
        )

    # 5. mixing: exploration, author diversity, breadth, in/out-of-network balance, top `limit` per user
    if learned is not None:  # a stated share of places for new or uncertain posts (feed/explore.py; 0 = off)
        score = explore(state, users, cands.row, cands.post, score, deltas, policy, now, limit)
    if learned is not None and policy.breadth.calibration > 0:  # pages towards each person's topic mix
        sel, final = breadth_pages(  # feed/breadth.py: the same assembly, the page chosen for breadth
            state, users, cands.row, cands.post, score, ctx.authors, ctx.in_network, limit, policy, deltas, now
        )
    else:
        sel, final = assemble_pages(cands.row, score, ctx.authors, ctx.in_network, limit, policy, deltas)
    remaining = np.bincount(cands.row, minlength=len(users)) - np.bincount(cands.row[sel], minlength=len(users))
    return Pages(
        row=cands.row[sel],
        post=cands.post[sel],
        score=final[sel],
        source=cands.source[sel],
        source_score=cands.source_score[sel],
        via=cands.via[sel],
        in_network=ctx.in_network[sel],
        probs=None if probs is None or X is None else models.heads.complete(probs[sel], X[sel], unweighted),
        features=None if X is None else X[sel],
        deltas=deltas[sel],
        interstitial=interstitial[sel],
        ranker="recency" if learned is None else policy.ranker,
        dropped=dropped,
        n_candidates=n_candidates,
        remaining=remaining,
        fallback_reason=fallback,
    )


def candidates(state: ServingState, models: Models, users: np.ndarray, policy: Policy, now: float) -> Candidates:
    """Stage 1: every source the policy names, sized by it, merged to one row per (user, post)
    (``Candidates.dedupe``). Serving and training (``feed.train.build_examples``) both call this."""
    cutoff = now - policy.filters.max_age_hours * 3600.0
    recent = prepare(state, models, policy, now)
    return Candidates.concat(
        [
            SOURCE_FUNCS[name](
                state,
                users,
                now,
                k,
                cutoff,
                recent=recent,
                index=models.collab,
                ease=models.ease,
                content_index=models.content,
            )
            for name, k in policy.sources.items()
        ]
    ).dedupe()


def prepare(state: ServingState, models: Models, policy: Policy, now: float) -> np.ndarray:
    """Posts inside the policy's freshness window, after bringing shared indexes up to date (the collaborative
    HNSW index). ``rank`` calls it; batch callers that fork workers call it once before forking."""
    recent = recent_posts(state, now, now - policy.filters.max_age_hours * 3600.0)
    if "collaborative" in policy.sources and models.ease is None:
        models.collab.refresh(state, recent, now)
    return recent


def recency_score(age_s: np.ndarray) -> np.ndarray:
    """Reverse-chronological score: 1 / (1 + age in hours), so newer is higher and multipliers behave."""
    return 1.0 / (1.0 + np.maximum(age_s, 0.0) / 3600.0)


def topic_preference(state: ServingState, users: np.ndarray, cands: Candidates, policy: Policy) -> np.ndarray:
    """Multiplier from each person's "more/less of this topic" choices (saved preferences)."""
    f = np.ones(len(cands))
    adj = policy.adjustments
    topics = state.posts.topic(cands.post)
    for r, u in enumerate(users.tolist()):
        prefs = state.feedback.prefs(u)
        if not prefs or not (prefs.get("topics_more") or prefs.get("topics_less")):
            continue
        m = cands.row == r
        for key, factor in (("topics_more", adj.topic_more_factor), ("topics_less", adj.topic_less_factor)):
            ids = [t for name in prefs.get(key, []) if (t := state.topics.lookup(name)) is not None]
            if ids:
                f[m & np.isin(topics, ids)] = factor
    return f


__all__ = ["Models", "Pages", "rank", "candidates", "prepare"]
