"""Exploration as policy data: a stated share of each page's places for new or uncertain posts.

A ranker trained on what it showed learns little about what it never shows, so a new post (and a new author)
that no source ranks high gathers no evidence. ``[mixing] explore_share`` (0 = off) gives ``floor(share x page
length)`` places of each page to candidates that are *new or uncertain* (decayed impressions below
``explore_max_impressions``) and would not have made the page on their score. Which ones is Thompson sampling on
their engagement rate: each draws a rate from its Beta posterior (prior ``explore_prior_rate`` with the strength of
``explore_prior_impressions`` impressions, plus its decayed likes + reposts + replies out of its decayed
impressions) and the highest draws are shown, so a post with little evidence but a plausible high rate is shown
often and a post whose evidence says it is unappealing stops being explored. Each explored post takes a place drawn
uniformly over the page: its score is raised to just above the post now at that place, and the raise is recorded
as its ``exploration`` adjustment, so the explanation's invariant (contributions + adjustments = score) holds and
the explanation says why it is there. The draws are seeded by ``seed``, the request time and its users: the same
request gets the same page. Exploration picks among the candidates that reached the mixing step (found by a source,
kept by the light ranker, past the filters): a post no source finds is not explored.
"""

from __future__ import annotations

import math

import numpy as np

from glassfeed.feed.mixing import A, rank_within
from glassfeed.feed.policy import Policy
from glassfeed.state import C, ServingState

#: The counters whose sum is a post's engagement for Thompson sampling.
ENGAGEMENT_COUNTERS = ("like", "repost", "reply")


def explore_places(limit: int, policy: Policy) -> int:
    """How many places of a page of ``limit`` go to exploration: ``floor(explore_share x limit)``."""
    return math.floor(policy.mixing.explore_share * limit + 1e-9)


def eligible(state: ServingState, posts: np.ndarray, now: float, policy: Policy) -> np.ndarray:
    """Whether each post is new or uncertain: decayed impressions below ``explore_max_impressions``."""
    imp = state.counters.decayed(posts, now)[:, C["impression"]]
    return imp < policy.mixing.explore_max_impressions


def thompson_draws(
    state: ServingState, posts: np.ndarray, now: float, policy: Policy, rng: np.random.Generator
) -> np.ndarray:
    """One engagement rate per post drawn from its Beta posterior (see the module docstring)."""
    cnt = state.counters.decayed(posts, now)
    imp = cnt[:, C["impression"]]
    eng = np.minimum(sum(cnt[:, C[c]] for c in ENGAGEMENT_COUNTERS), imp)
    mix = policy.mixing
    a = mix.explore_prior_rate * mix.explore_prior_impressions + eng
    b = (1.0 - mix.explore_prior_rate) * mix.explore_prior_impressions + (imp - eng)
    return rng.beta(a, b)


def explore(
    state: ServingState,
    users: np.ndarray,
    rows: np.ndarray,
    posts: np.ndarray,
    score: np.ndarray,
    deltas: np.ndarray,
    policy: Policy,
    now: float,
    limit: int,
    seed: int = 0,
) -> np.ndarray:
    """Give each user's page its exploration places (before ``mixing.assemble_pages``): returns the new scores and
    fills ``deltas[:, A["exploration"]]`` with each explored candidate's raise. Candidates (``rows`` index
    ``users``) are the page's after filters, heads and adjustments; a page with fewer eligible candidates than
    places explores fewer."""
    n_places = explore_places(limit, policy)
    if n_places == 0 or not len(rows):
        return score
    score = np.asarray(score, np.float64).copy()
    zero = np.zeros(len(rows), np.int64)
    order = np.lexsort((-score, rows))
    rank = np.empty(len(rows), np.int64)
    rank[order] = rank_within(rows[order], zero[order])
    pool = np.flatnonzero((rank >= limit) & eligible(state, posts, now, policy))  # would miss the page on score
    if not len(pool):
        return score
    rng = np.random.default_rng([seed, int(now * 1000) & (2**63 - 1), *np.asarray(users, np.int64).tolist()])
    theta = thompson_draws(state, posts[pool], now, policy, rng)
    by = np.lexsort((-theta, rows[pool]))
    picked = pool[by][rank_within(rows[pool][by], zero[pool][by]) < n_places]
    # each explored post goes just above the post now at a place drawn uniformly over the page
    rest = np.ones(len(rows), bool)
    rest[picked] = False
    kept = np.flatnonzero(rest)
    kept = kept[np.lexsort((-score[kept], rows[kept]))]
    n_rows = int(rows.max()) + 1
    count = np.bincount(rows[kept], minlength=n_rows)
    start = np.cumsum(count) - count
    room = limit - np.bincount(rows[picked], minlength=n_rows)[rows[picked]]  # the places the others keep
    place = (rng.random(len(picked)) * room).astype(np.int64)
    at = place < count[rows[picked]]  # else the page has room for it below the others anyway
    target = score[kept[start[rows[picked[at]]] + place[at]]]
    new = np.maximum(np.nextafter(target, np.inf), score[picked[at]])
    deltas[picked[at], A["exploration"]] = new - score[picked[at]]
    score[picked[at]] = new
    return score


def explored_items(deltas: np.ndarray) -> np.ndarray:
    """Which items (rows of ``deltas``, e.g. a page's) took an exploration place."""
    return np.asarray(deltas)[:, A["exploration"]] > 0


def explore_note(limit: int, policy: Policy) -> str:
    """The explanation of an explored item, in words."""
    n = explore_places(limit, policy)
    return (
        f"shown to help new posts be seen: {100 * policy.mixing.explore_share:.0f}% of places ({n} of {limit} here) "
        "are for posts few people have seen yet, picked at random favouring those that may turn out engaging"
    )
