"""Filters: visibility (moderation: labels, and the lever's outcome for the page's surface), blocks/mutes/muted
words, own posts, posts you reported, seen/served, age, feedback fatigue.

Each filter is a boolean mask over the flat candidate table; ``apply_filters`` returns the rows kept, the
number each filter dropped (published with the page), and the fatigue multiplier for the kept rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import numpy as np

from glassfeed.feed.candidates import Candidates
from glassfeed.feed.features import PairContext
from glassfeed.feed.policy import Policy
from glassfeed.state import ServingState

DAY = 86400.0


def _pair_keys(users: np.ndarray, others: np.ndarray, n: int) -> np.ndarray:
    return users.astype(np.int64) * n + others.astype(np.int64)


def _set_pairs(users: np.ndarray, sets: Sequence[AbstractSet[int] | None], n: int) -> np.ndarray:
    keys = [u * n + v for u, s in zip(users.tolist(), sets) if s for v in s]
    return np.asarray(keys, np.int64)


def _array_pairs(users: np.ndarray, arrays: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Like ``_set_pairs`` for per-user integer arrays, in one concatenation."""
    parts = [u * n + a.astype(np.int64) for u, a in zip(users.tolist(), arrays) if len(a)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def fatigue_multiplier(policy: Policy, since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(drop, multiplier) for candidates whose author got a 'see less' ``since`` seconds ago (inf = never)."""
    fat = policy.fatigue
    filt, disc = fat.filter_days * DAY, fat.discount_days * DAY
    drop = since < filt
    mult = np.ones(len(since))
    in_disc = (since >= filt) & (since < filt + disc)
    if in_disc.any() and disc > 0:
        steps = fat.discount_steps
        step = np.floor((since[in_disc] - filt) / (disc / steps))
        mult[in_disc] = fat.discount_start + (1.0 - fat.discount_start) * step / steps
    return drop, mult


def apply_filters(
    state: ServingState,
    users: np.ndarray,
    c: Candidates,
    ctx: PairContext,
    policy: Policy,
    now: float,
    served: list[set[int]],
    surface: str = "home",
) -> tuple[np.ndarray, dict[str, int], np.ndarray, np.ndarray]:
    """Returns (kept row indices, dropped-per-filter counts, fatigue multiplier, interstitial flag) for ``c``
    (``ctx``: the candidates' pair context, giving authors and "see less" times). ``surface``: where the page is
    shown, which picks the moderation outcome (``state.visibility``) that applies."""
    post = c.post
    author = ctx.authors
    dropped: dict[str, int] = {}
    keep = np.ones(len(c), bool)

    def drop(name: str, mask: np.ndarray) -> None:
        m = mask & keep
        dropped[name] = int(m.sum())
        keep[m] = False

    drop("moderation_removed", state.posts.removed(post))
    vis = state.visibility
    if vis.any:
        drop("moderation_action", vis.dropped(post, surface))
        restricted = vis.followers_only(post, surface)
        if restricted.any():  # reach restricted to the author's followers
            follows = np.zeros(len(c), bool)
            at = np.flatnonzero(restricted & keep)
            ub_at = users[c.row[at]].tolist()
            follows[at] = [int(a) in state.graph.following(u) for u, a in zip(ub_at, author[at].tolist())]
            drop("moderation_followers_only", restricted & ~follows)
    drop("own_post", author == ctx.user)
    drop("too_old", state.posts.created(post) < now - policy.filters.max_age_hours * 3600.0)
    ub = users.tolist()
    rows = np.arange(len(ub))
    n_users_total = state.n_users + 2
    drop(
        "blocked_or_muted",
        np.isin(
            _pair_keys(c.row, author, n_users_total),
            _set_pairs(rows, [state.graph.hidden(x) for x in ub], n_users_total),
        ),
    )
    n_posts = state.posts.capacity + 1
    post_keys = _pair_keys(c.row, post, n_posts)  # (row, post) codes the reported/served/seen filters share
    reported = [state.feedback.reported(x) for x in ub] if state.feedback.any_reported else []
    drop(
        "reported_by_you",
        np.isin(post_keys, _set_pairs(rows, reported, n_posts)) if any(reported) else np.zeros(len(c), bool),
    )
    drop("served_this_session", np.isin(post_keys, _set_pairs(rows, served, n_posts)))
    if policy.filters.filter_seen:
        drop(
            "already_seen",
            np.isin(post_keys, _array_pairs(rows, [state.feedback.seen(x) for x in ub], n_posts)),
        )
    words = [state.feedback.muted_words(x) for x in ub]
    if any(words):
        m = np.zeros(len(c), bool)
        at = np.flatnonzero(keep & np.isin(c.row, np.flatnonzero([bool(w) for w in words])))
        m[at] = state.posts.contains_any(post[at], [words[r] for r in c.row[at].tolist()])
        drop("muted_word", m)
    since = np.full(len(c), np.inf)
    if state.feedback.any_see_less and policy.fatigue.filter_days + policy.fatigue.discount_days > 0:
        t = ctx.see_less_at  # time of the user's last "see less" on the author, 0 = never
        since = np.where(t > 0, now - t, np.inf)
    fat_drop, fat_mult = fatigue_multiplier(policy, since)
    drop("see_less_fatigue", fat_drop)
    kept = np.flatnonzero(keep)
    interstitial = state.posts.interstitial(post[kept])
    if vis.any:
        interstitial = interstitial | vis.interstitial(post[kept], surface)
    return kept, dropped, fat_mult[kept], interstitial
