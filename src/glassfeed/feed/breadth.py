"""Breadth as policy data: each page chosen to match the mix of topics the person engages with.

Ranking every post by its own score fills a page with the person's top topic: someone whose engagement is 70%
music and 30% science gets a page of music, because the best music post outscores the best science post, and so
does the second best, and so on (Steck 2018, "Calibrated recommendations", RecSys). With ``[breadth] calibration``
(λ) above 0 the page is chosen greedily instead, place by place, each place going to the candidate that maximises

    (1 - λ) x (the page's mean relative score)  -  λ x KL(p || q̃)

with the candidate added: a candidate's relative score is its score (after every adjustment and author diversity)
divided by the largest absolute score among the person's candidates, so λ means the same under any weights and any
page length; ``q`` is the topic mix of the page, ``q̃ = (1 - α) q + α p`` (Steck's smoothing, α = ``smoothing``, so
KL is finite) and ``p`` the person's topic mix (``target_mix``): the share of their decayed positive engagement that
went to each topic, leaning, while they have few engagements, on what they chose themselves (the topics they picked
and those of the recent posts of the accounts they follow; ``prior_strength``): a mix read from a dozen likes is
sparse, and it only holds topics the person was shown. Only the person's ``pool`` best-scoring candidates are
considered, so a post far down the ranking is never placed for breadth; a post with no topic counts as a topic the
person has no share in, so it is never placed for breadth either. λ = 0 is off (``mixing.assemble_pages``); a person
with no mix (nothing engaged with, picked or followed) keeps the score's order.

The stage replaces the page assembly for the policies that use it (``assemble_breadth_pages``): author diversity
first, then the greedy within the in/out-of-network caps (a side that has its places takes no more), then the page
is made the scores' order: going up from its last place, a post that would not rank above the post below it, or
above the best candidate left off the page that could have taken its place, is raised to just above them. The raise
is its ``breadth`` adjustment, so the explanation's invariant (contributions + adjustments = score) holds, and its
explanation (``breadth_notes``) says it was placed for breadth and which topic was under-represented. Posts already
in their place keep their scores. Places the greedy leaves (too few candidates in the pool) are filled as
``assemble_pages`` fills them. Exploration (``feed/explore.py``) runs before: an explored post enters the greedy
with its raised score and may be left off for breadth, so with both on exploration's share is at most the stated
one.

Batch-first: one call chooses every page of the batch at once, as padded (users x pool) arrays; each step of the
greedy is a handful of array operations over the whole batch, and each user's page depends on their own rows only
(a batch gives every user the page a call for that user alone gives).
"""

from __future__ import annotations

import numpy as np

from glassfeed.feed.candidates import expand_pairs
from glassfeed.feed.mixing import A, author_diversity, rank_within, usable_sides
from glassfeed.feed.policy import Policy
from glassfeed.state import ServingState


def followed_topics(state: ServingState, users: np.ndarray, now: float, cutoff: float) -> np.ndarray:
    """(len(users), n_topics): how many posts made in ``[cutoff, now]`` by the accounts each user follows are about
    each topic (posts without a topic are not counted)."""
    users = np.asarray(users, np.int64)
    n_topics = len(state.topics)
    out = np.zeros((len(users), n_topics))
    rec = state.posts.created_between(cutoff, now)
    topic = state.posts.topic(rec).astype(np.int64)
    rec, topic = rec[topic >= 0], topic[topic >= 0]
    if not len(rec) or not len(users):
        return out
    author = state.posts.author(rec).astype(np.int64)
    order = np.argsort(author, kind="stable")
    author, topic = author[order], topic[order]
    accounts, n_posts = np.unique(author, return_counts=True)
    row, followed = state.graph.follow_pairs(users)
    j = np.searchsorted(accounts, followed)
    ok = j < len(accounts)
    ok[ok] = accounts[j[ok]] == followed[ok]
    r, at, _ = expand_pairs(row[ok], followed[ok], j[ok], n_posts)
    np.add.at(out, (r, topic[at]), 1.0)
    return out


def target_mix(state: ServingState, users: np.ndarray, now: float, cutoff: float, prior_strength: float) -> np.ndarray:
    """Each user's topic mix ``p``: (len(users), n_topics + 1), rows summing to 1, or to 0 where nothing is known of
    a user. The last column is "no topic", always 0. ``p = (1 - w) x engaged + w x chosen`` with ``w = prior_strength
    / (prior_strength + the user's positive engagements with topics)``: ``engaged`` is the share of the user's decayed
    positive engagement that went to each topic, ``chosen`` the mean of what the user chose themselves: the topics
    they picked (uniform over them) and the topics of the recent posts (``[cutoff, now]``) of the accounts they follow.
    With few engagements the mix leans on what the person chose, with many on what they engaged with."""
    users = np.asarray(users, np.int64)
    n_topics = len(state.topics)
    prof = state.counters.topic_profiles(users, n_topics)
    tot = prof.sum(axis=1, keepdims=True)
    engaged = np.divide(prof, tot, out=np.zeros_like(prof), where=tot > 0)
    picked = np.zeros((len(users), n_topics))
    for r, u in enumerate(users.tolist()):
        chosen = [t for t in state.users.interests_of(u) if 0 <= t < n_topics] if u > 0 else []
        if chosen:
            picked[r, chosen] = 1.0 / len(chosen)
    follows = followed_topics(state, users, now, cutoff)
    f_tot = follows.sum(axis=1, keepdims=True)
    follows = np.divide(follows, f_tot, out=np.zeros_like(follows), where=f_tot > 0)
    n_known = (picked.sum(axis=1, keepdims=True) > 0).astype(np.float64) + (f_tot > 0)
    chosen_mix = np.divide(picked + follows, n_known, out=np.zeros_like(picked), where=n_known > 0)
    n_eng = state.counters.topic_engagements(users).astype(np.float64)[:, None]
    w = np.where(tot > 0, prior_strength / np.maximum(prior_strength + n_eng, 1e-12), 1.0)
    w = np.where(n_known > 0, w, 0.0)  # nothing chosen: the engagement alone (or nothing)
    mix = (1.0 - w) * engaged + w * chosen_mix
    s = mix.sum(axis=1, keepdims=True)
    mix = np.divide(mix, s, out=np.zeros_like(mix), where=s > 0)
    return np.concatenate([mix, np.zeros((len(users), 1))], axis=1)


def categories(state: ServingState, posts: np.ndarray, max_divisiveness: float = 1.0) -> np.ndarray:
    """Each post's column in ``target_mix``: its topic id, or the last column ("no topic") for a post without one or
    more divisive than ``max_divisiveness``: like a post without a topic, such a post is never placed for breadth
    (placing it lowers no topic's shortfall), though it keeps its place by score."""
    posts = np.asarray(posts, np.int64)
    t = state.posts.topic(posts).astype(np.int64)
    none = t < 0
    if max_divisiveness < 1.0:
        none |= state.posts.divisiveness(posts) > max_divisiveness
    return np.where(none, len(state.topics), t)


def calibrated_order(
    rows: np.ndarray,
    cat: np.ndarray,
    score: np.ndarray,
    target: np.ndarray,
    limit: int,
    calibration: float,
    smoothing: float,
    pool: int,
    side: np.ndarray | None = None,
    caps: tuple[int, int] | None = None,
) -> np.ndarray:
    """The greedy calibrated pages (module docstring): ``(n_rows, min(limit, pool))`` candidate indices in page
    order, -1 past the end of a short page. ``rows[i]`` indexes ``target`` (one row per user), ``cat[i]`` its column.
    With ``side`` (0 or 1 per candidate: out of or in network) and ``caps`` (places per side), a side that has its
    places takes no more. Ties go to the higher score, then to the lower index."""
    n_rows, n_cat = target.shape
    score = np.asarray(score, np.float64)
    n = len(rows)
    order = np.lexsort((np.arange(n), -score, rows))
    pos = np.empty(n, np.int64)
    pos[order] = rank_within(rows[order], np.zeros(n, np.int64))
    width = int(min(pool, pos.max() + 1)) if n else 0
    depth = min(limit, width)
    picks = np.full((n_rows, depth), -1, np.int64)
    if depth == 0:
        return picks
    keep = np.flatnonzero(pos < width)
    idx = np.full((n_rows, width), -1, np.int64)
    idx[rows[keep], pos[keep]] = keep
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    s = np.where(valid, score[safe], 0.0)
    scale = np.abs(s).max(axis=1, keepdims=True)
    rel = s / np.where(scale > 0, scale, 1.0) / depth  # the page's mean relative score: each place's share of it
    c = np.where(valid, cat[safe], n_cat - 1)
    p = np.asarray(target, np.float64)
    lam = np.where(p.sum(axis=1) > 0, float(calibration), 0.0)[:, None]
    has = p > 0
    plogp = np.where(has, p * np.log(np.where(has, p, 1.0)), 0.0).sum(axis=1)
    counts = np.zeros((n_rows, n_cat))
    k = np.zeros((n_rows, 1))
    taken = ~valid
    r_all = np.arange(n_rows)
    if side is not None and caps is not None:
        sd = np.where(valid, np.asarray(side, np.int64)[safe], 0)
        room = np.tile(np.asarray(caps, np.int64), (n_rows, 1))  # places left per (row, side)
    else:  # one side with room for every place
        sd = np.zeros((n_rows, width), np.int64)
        room = np.full((n_rows, 2), depth, np.int64)
    a = float(smoothing)
    for step in range(depth):
        # KL(p || q̃) of the page with one more post of each category (the sum over p > 0 only)
        q_off = (1.0 - a) * counts / (k + 1.0) + a * p  # a category's share when the added post is not of it
        q_on = (1.0 - a) * (counts + 1.0) / (k + 1.0) + a * p  # ... and when it is
        log_off = np.log(np.where(has, q_off, 1.0))
        base = plogp - np.where(has, p * log_off, 0.0).sum(axis=1)
        kl = base[:, None] + np.where(has, p * (log_off - np.log(np.where(has, q_on, 1.0))), 0.0)
        gain = (1.0 - lam) * rel - lam * np.take_along_axis(kl, c, axis=1)
        blocked = taken | (np.take_along_axis(room, sd, axis=1) <= 0)
        gain[blocked] = -np.inf
        j = np.argmax(gain, axis=1)
        ok = ~blocked[r_all, j]
        if not ok.any():
            break
        r, jj = r_all[ok], j[ok]
        picks[r, step] = idx[r, jj]
        taken[r, jj] = True
        counts[r, c[r, jj]] += 1.0
        k[r] += 1.0
        room[r, sd[r, jj]] -= 1
    return picks  # a row without a pick at a step has none later (what blocks a candidate only grows)


def _above(v: np.ndarray, i: np.ndarray, fv: np.ndarray, fi: np.ndarray) -> np.ndarray:
    """Whether (score ``v``, index ``i``) ranks above (``fv``, ``fi``) in ``mixing.assemble_pages``' order: the higher
    score, then the lower index."""
    return (v > fv) | ((v == fv) & (i < fi))


def raise_to_order(
    rows: np.ndarray,
    score: np.ndarray,
    picks: np.ndarray,
    side: np.ndarray | None = None,
    room: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """New scores that make each row's ``picks`` (in page order) rank in that order and above every candidate not
    picked that could have taken a pick's place: going up from the last pick, a pick that would not rank above the
    pick below it and those candidates (the higher score, then the lower index) is raised to just above them. With
    ``side`` (0 or 1 per candidate) and ``room`` ((n_rows, 2): places a side has left on the page), a candidate could
    have taken the place of a pick of its own side, or of any pick if its side has room left. Picks that already
    rank there, and every candidate not picked, keep their scores.

    Returns (new scores, placed scores). A pick can be raised for two reasons, and the two are told apart because
    they are explained differently: it was *placed* above posts that scored higher (a candidate left off that could
    have taken its place, or a pick below it whose own score is higher), or it only had to stay above a pick below it
    that was itself raised (a chain: with ``order = "score"`` a post placed for breadth sits below posts that
    outscored it, and when its raise takes it above their scores they must be raised with it). The placed score is
    the first alone (the pick raised above what it displaced, by their own scores); new - placed is the chain."""
    score = np.asarray(score, np.float64)
    new = score.copy()
    placed = score.copy()
    n_rows = picks.shape[0]
    n = len(rows)
    if not n or not picks.size:
        return new, placed
    side = np.zeros(n, np.int64) if side is None else np.asarray(side, np.int64)
    open_ = np.ones((n_rows, 2), bool) if room is None else np.asarray(room) > 0
    picked = np.zeros(n, bool)
    picked[picks[picks >= 0]] = True
    # the best candidate left off each row's page, per side (max score, then lowest index)
    best_v = np.full((n_rows, 2), -np.inf)
    best_i = np.full((n_rows, 2), n, np.int64)
    rest = np.flatnonzero(~picked)
    rest = rest[np.lexsort((rest, -score[rest], side[rest], rows[rest]))]
    first = np.ones(len(rest), bool)
    first[1:] = (rows[rest][1:] != rows[rest][:-1]) | (side[rest][1:] != side[rest][:-1])
    best = rest[first]
    best_v[rows[best], side[best]] = score[best]
    best_i[rows[best], side[best]] = best
    # the floor of a pick of side s: the better of its own side's best and the other side's, if that one has room
    floor_v, floor_i = best_v.copy(), best_i.copy()
    for s in (0, 1):
        o = 1 - s
        other = open_[:, o] & _above(best_v[:, o], best_i[:, o], best_v[:, s], best_i[:, s])
        floor_v[other, s], floor_i[other, s] = best_v[other, o], best_i[other, o]
    next_v = np.full(n_rows, -np.inf)  # the pick below, as raised
    next_i = np.full(n_rows, n, np.int64)
    own_v = np.full(n_rows, -np.inf)  # the best of the picks below by their own scores
    own_i = np.full(n_rows, n, np.int64)
    for col in range(picks.shape[1] - 1, -1, -1):
        at = np.flatnonzero(picks[:, col] >= 0)
        i = picks[at, col]
        fv, fi = floor_v[at, side[i]], floor_i[at, side[i]]
        for bound_v, bound_i, out in ((next_v[at], next_i[at], new), (own_v[at], own_i[at], placed)):
            nxt = _above(bound_v, bound_i, fv, fi)  # the binding one: whichever ranks higher
            bv, bi = np.where(nxt, bound_v, fv), np.where(nxt, bound_i, fi)
            out[i] = np.where(_above(score[i], i, bv, bi), score[i], np.nextafter(bv, np.inf))
        next_v[at], next_i[at] = new[i], i
        better = _above(score[i], i, own_v[at], own_i[at])
        own_v[at], own_i[at] = np.where(better, score[i], own_v[at]), np.where(better, i, own_i[at])
    return new, placed


def assemble_breadth_pages(
    rows: np.ndarray,
    cat: np.ndarray,
    score: np.ndarray,
    authors: np.ndarray,
    in_net: np.ndarray,
    target: np.ndarray,
    limit: int,
    policy: Policy,
    deltas: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``mixing.assemble_pages`` with the stage: author diversity, then each page chosen by the calibrated greedy
    within the in/out-of-network caps and raised into its order (the raise is each post's ``breadth`` adjustment),
    then filled beyond the caps with the best-scoring candidates left, as ``assemble_pages`` fills. ``cat`` and
    ``target`` as ``calibrated_order`` takes them (``target`` has a row per user ``rows`` indexes). Returns (selected
    indices in page order: by user, then final score, ties by index; final scores); ``deltas`` gets the diversity
    and breadth deltas filled in."""
    if not len(rows):
        return np.zeros(0, np.int64), score
    final = author_diversity(rows, score, authors, policy, deltas)
    b, mix = policy.breadth, policy.mixing
    caps = (int(np.floor(mix.out_network_share * limit)), int(np.floor(mix.in_network_share * limit)))
    in_net = np.asarray(in_net, bool)
    side = in_net.astype(np.int64)
    picks = calibrated_order(rows, cat, final, target, limit, b.calibration, b.smoothing, b.pool, side, caps)
    if b.order == "score":  # the chosen posts by score: a post placed for breadth goes below those that outscored it
        key = np.where(picks >= 0, -final[np.maximum(picks, 0)], np.inf)
        picks = np.take_along_axis(picks, np.lexsort((picks, key), axis=1), axis=1)
    sel = picks[picks >= 0]
    n_rows = len(target)
    room = np.tile(np.asarray(caps, np.int64), (n_rows, 1))  # places each side has left on the page
    np.subtract.at(room, (rows[sel], side[sel]), 1)
    short = limit - np.bincount(rows[sel], minlength=n_rows)
    new, placed = raise_to_order(rows, final, picks, side, room)
    deltas[:, A["breadth"]] = placed - final  # placed above posts that scored higher
    deltas[:, A["breadth_order"]] = new - placed  # and only kept above a placed post below it
    # then as ``assemble_pages``: the best-scoring candidates left within their side's places (those the greedy did
    # not reach: past the pool), then, the caps being a balance and not a reason to serve fewer posts than exist,
    # the best-scoring ones left on a usable side
    rest = np.ones(len(rows), bool)
    rest[sel] = False
    order = np.flatnonzero(rest)
    order = order[np.lexsort((order, -new[order], rows[order]))]
    in_cap = rank_within(rows[order], side[order]) < room[rows[order], side[order]]
    more = order[in_cap]
    more = more[rank_within(rows[more], np.zeros(len(more), np.int64)) < short[rows[more]]]
    short -= np.bincount(rows[more], minlength=n_rows)
    spare = order[~in_cap & usable_sides(in_net[order], policy)]
    spare = spare[rank_within(rows[spare], np.zeros(len(spare), np.int64)) < short[rows[spare]]]
    sel = np.concatenate([sel, more, spare])
    return sel[np.lexsort((sel, -new[sel], rows[sel]))], new


def breadth_pages(
    state: ServingState,
    users: np.ndarray,
    rows: np.ndarray,
    posts: np.ndarray,
    score: np.ndarray,
    authors: np.ndarray,
    in_net: np.ndarray,
    limit: int,
    policy: Policy,
    deltas: np.ndarray,
    now: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The stage in the pipeline, for a policy with ``[breadth] calibration`` > 0 (``rows`` index ``users``): each
    user's topic mix and each candidate's topic from the state, then ``assemble_breadth_pages``."""
    b = policy.breadth
    target = target_mix(state, users, now, now - policy.filters.max_age_hours * 3600.0, b.prior_strength)
    cat = categories(state, posts, b.max_divisiveness)
    return assemble_breadth_pages(rows, cat, score, authors, in_net, target, limit, policy, deltas)


def breadth_items(deltas: np.ndarray) -> np.ndarray:
    """Which items (rows of ``deltas``, e.g. a page's) the stage placed above posts that scored higher."""
    return np.asarray(deltas)[:, A["breadth"]] > 0


def breadth_notes(
    state: ServingState, user: int, posts: np.ndarray, deltas: np.ndarray, policy: Policy, now: float
) -> dict[int, str]:
    """The explanation of each item of a page that ``breadth_items`` marks, in words, by its index on the page
    (``now``: the time the page was ranked at, so the person's mix is the one the stage used)."""
    at = np.flatnonzero(breadth_items(deltas))
    if not len(at):
        return {}
    b = policy.breadth
    mix = target_mix(state, np.array([user]), now, now - policy.filters.max_age_hours * 3600.0, b.prior_strength)[0]
    cat = categories(state, np.asarray(posts)[at])
    out = {}
    for i, t in zip(at.tolist(), cat.tolist(), strict=True):
        topic = f"#{state.topics.name(t)}" if t < len(state.topics) else "this post's topic"
        out[i] = (
            f"placed for breadth: {topic} is about {100 * mix[t]:.0f}% of what you engage with, and the posts that "
            "scored higher would have left it under-represented on this page, so it was placed above some of them"
        )
    return out
