"""Audit metrics over impression logs: engagement, divisiveness, amplification, diversity, homogenisation.

Pure, vectorised numpy functions with no glassfeed state, so the same code scores a simulated run and a
live deployment's logs. Every function documents its edge cases (empty groups, zero denominators) and
returns ``nan``/``inf`` for them rather than raising.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "group_sum",
    "group_mean",
    "engagement_rate",
    "time_spent",
    "divisive_share",
    "exposure_matrix",
    "amplification_ratio",
    "reach_amplification",
    "topic_entropy",
    "nearest_neighbours",
    "pair_jaccard",
    "jaccard_homogenisation",
    "polarisation",
    "bimodality_coefficient",
    "gini",
]


# --------------------------------------------------------------------------- aggregates


def group_sum(values: ArrayLike, groups: ArrayLike, n_groups: int | None = None) -> NDArray[np.float64]:
    """Sum ``values`` per integer group id (``bincount``); groups with no rows get 0."""
    v = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(groups, dtype=np.int64).ravel()
    if v.shape != g.shape:
        raise ValueError("values and groups must have the same length")
    n = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
    return np.bincount(g, weights=v, minlength=n)[:n].astype(np.float64, copy=False) if n else np.zeros(0)


def group_mean(values: ArrayLike, groups: ArrayLike, n_groups: int | None = None) -> NDArray[np.float64]:
    """Mean of ``values`` per integer group id; groups with no rows get ``nan``."""
    g = np.asarray(groups, dtype=np.int64).ravel()
    n = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
    sums = group_sum(values, g, n)
    counts = np.bincount(g, minlength=n)[:n].astype(np.float64) if n else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def engagement_rate(
    engaged: ArrayLike, users: ArrayLike | None = None, n_users: int | None = None
) -> float | NDArray[np.float64]:
    """Share of impressions that were engaged with (each row one impression, ``engaged`` 0/1 or bool).

    With ``users`` (the viewer of each impression) returns one rate per user, ``nan`` for users with no
    impressions; without, the pooled rate (``nan`` for an empty log).
    """
    e = np.asarray(engaged, dtype=np.float64).ravel()
    if users is None:
        return float(e.mean()) if e.size else float("nan")
    return group_mean(e, users, n_users)


def time_spent(
    dwell: ArrayLike, users: ArrayLike, n_users: int | None = None, scale: float = 1e-3
) -> NDArray[np.float64]:
    """Total dwell per user, multiplied by ``scale`` (default: milliseconds -> seconds); 0 for silent users.

    Missing dwell values (``nan``) count as zero time, so an impression without a dwell event adds nothing.
    """
    d = np.nan_to_num(np.asarray(dwell, dtype=np.float64).ravel(), nan=0.0)
    return group_sum(d, users, n_users) * scale


# --------------------------------------------------------------------------- divisiveness (Milli et al. 2025)


def divisive_share(
    served_divisiveness: ArrayLike, threshold: float = 0.5, groups: ArrayLike | None = None, n_groups: int | None = None
) -> float | NDArray[np.float64]:
    """Share of served items whose divisiveness score is ``>= threshold``.

    Milli, Carroll, Wang, Pandey, Zhao & Dragan (2025, PNAS Nexus), "Engagement, user satisfaction, and the
    amplification of divisive content on social media", compare the top-10 of an engagement-ranked timeline
    with the reverse-chronological one; this is the matching served-page statistic. Unknown scores
    (``nan``) are excluded from numerator and denominator. With ``groups`` (e.g. a page or user id per
    served item) returns one share per group; an empty group or log gives ``nan``.
    """
    d = np.asarray(served_divisiveness, dtype=np.float64).ravel()
    known = ~np.isnan(d)
    hit = np.zeros_like(d)
    hit[known] = d[known] >= threshold
    if groups is None:
        return float(hit[known].mean()) if known.any() else float("nan")
    g = np.asarray(groups, dtype=np.int64).ravel()
    n = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
    num = group_sum(hit, g, n)
    den = group_sum(known.astype(np.float64), g, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


# --------------------------------------------------------------------------- amplification (Huszar et al. 2022)


def exposure_matrix(imp_users: ArrayLike, imp_groups: ArrayLike, n_users: int, n_groups: int) -> NDArray[np.bool_]:
    """``(n_users, n_groups)`` bool: did user u see at least one post of group g. Negative group ids are ignored."""
    u = np.asarray(imp_users, dtype=np.int64).ravel()
    g = np.asarray(imp_groups, dtype=np.int64).ravel()
    keep = (g >= 0) & (g < n_groups)
    out = np.zeros((n_users, n_groups), dtype=bool)
    out[u[keep], g[keep]] = True
    return out


def amplification_ratio(
    imp_users: ArrayLike,
    imp_groups: ArrayLike,
    treated: ArrayLike,
    n_groups: int | None = None,
    audience: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Huszar et al. (2022, PNAS) group amplification, one value per group of posts.

    For each group g (its posts are the set T) and audience U::

        A_g = (share of treatment users in U who saw any post of T)
              / (share of control users in U who saw any post of T) - 1

    ``imp_users``/``imp_groups``: viewer and post group of every impression (group ``-1`` = no group);
    ``treated``: one bool per user, True for the ranked (treatment) feed, False for the reverse-chronological
    control; ``audience``: optional bool per user restricting U. Edge cases, not errors: a zero control share
    gives ``+inf`` when the treatment share is positive and ``nan`` when both are zero; an audience with no
    treatment or no control users gives ``nan``. 0 means no amplification, 1 means twice the reach.
    """
    t = np.asarray(treated, dtype=bool).ravel()
    n_users = t.size
    g = np.asarray(imp_groups, dtype=np.int64).ravel()
    n = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size and g.max() >= 0 else 0)
    seen = exposure_matrix(imp_users, g, n_users, n)
    aud = np.ones(n_users, dtype=bool) if audience is None else np.asarray(audience, dtype=bool).ravel()
    tr, co = aud & t, aud & ~t
    return np.asarray(reach_amplification(seen[tr], seen[co]), dtype=np.float64)


def reach_amplification(
    seen_treat: ArrayLike, seen_ctrl: ArrayLike, w_treat: ArrayLike | None = None, w_ctrl: ArrayLike | None = None
) -> NDArray[np.float64]:
    """The Huszar amplification of :func:`amplification_ratio` from exposure rows: ``seen_treat`` ``(n_t, G)`` and
    ``seen_ctrl`` ``(n_c, G)`` bool (did each treatment / control user see any post of group g).

    ``w_treat`` / ``w_ctrl``: optional weights per user, ``(..., n_t)`` / ``(..., n_c)`` (e.g. a bootstrap's
    resampling counts, one row per replicate), giving one ``(..., G)`` row of ratios per weight row; without them
    each user counts once. Reach shares are weighted means; the edge cases are those of ``amplification_ratio``
    (a side with no users, or zero total weight, gives ``nan``)."""
    st = np.asarray(seen_treat, dtype=np.float64)
    sc = np.asarray(seen_ctrl, dtype=np.float64)
    wt = np.ones(st.shape[0]) if w_treat is None else np.asarray(w_treat, dtype=np.float64)
    wc = np.ones(sc.shape[0]) if w_ctrl is None else np.asarray(w_ctrl, dtype=np.float64)
    n_t, n_c = wt.sum(axis=-1, keepdims=True), wc.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_t = (wt @ st) / n_t
        share_c = (wc @ sc) / n_c
        ratio = share_t / share_c - 1.0  # x/0 -> inf, 0/0 -> nan
    empty = (n_t == 0) | (n_c == 0)
    return np.where(empty, np.nan, ratio)


# --------------------------------------------------------------------------- exposure diversity


def topic_entropy(topic_counts: ArrayLike, base: float = 2.0, normalise: bool = False) -> NDArray[np.float64]:
    """Shannon entropy of each row's topic distribution (rows = users, columns = topic exposure counts).

    In bits by default; ``normalise=True`` divides by ``log(n_topics)`` so 1 means uniform exposure. A row with
    no exposure has undefined diversity and gives ``nan``; a single-topic row gives 0.
    """
    c = np.asarray(topic_counts, dtype=np.float64)
    if np.any(c < 0):
        raise ValueError("topic counts must be non-negative")
    tot = c.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = c / tot
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = terms.sum(axis=-1) / np.log(base)
    h = np.where(tot[..., 0] > 0, h, np.nan)
    if normalise:
        k = c.shape[-1]
        h = h / (np.log(k) / np.log(base)) if k > 1 else np.where(np.isnan(h), np.nan, 0.0)
    return h


# --------------------------------------------------------------------------- homogenisation (Chaney et al. 2018)


def nearest_neighbours(user_vectors: ArrayLike, rng: np.random.Generator | None = None) -> NDArray[np.int64]:
    """Index of each user's most cosine-similar other user, over the last two axes ``(..., U, d)``.

    A user is never their own neighbour. Zero vectors have cosine 0 with everyone (as in scikit-learn).
    Exact ties are broken uniformly at random with ``rng``, or by lowest index when ``rng`` is None.
    """
    x = np.asarray(user_vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    xn = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    sim = xn @ np.swapaxes(xn, -1, -2)
    n = sim.shape[-1]
    if n < 2:
        raise ValueError("need at least two users")
    # snap float noise so identical vectors tie exactly, then break ties explicitly
    sim = np.round(sim, 12)
    diag = np.arange(n)
    sim[..., diag, diag] = -np.inf
    if rng is None:
        return np.argmax(sim, axis=-1)
    best = sim.max(axis=-1, keepdims=True)
    key = np.where(sim == best, rng.random(sim.shape), -1.0)
    return np.argmax(key, axis=-1)


def pair_jaccard(consumed: ArrayLike, partner: ArrayLike) -> NDArray[np.float64]:
    """Jaccard index of each user's consumed set with their partner's, over ``(..., U, I)`` bool matrices.

    ``partner[..., u]`` is the other user's index. Two empty sets give 0 (no shared consumption).
    """
    c = np.asarray(consumed, dtype=bool)
    p = np.asarray(partner, dtype=np.int64)
    other = np.take_along_axis(c, p[..., None], axis=-2)
    inter = (c & other).view(np.uint8).sum(axis=-1, dtype=np.int64)  # faster than count_nonzero(axis=)
    union = (c | other).view(np.uint8).sum(axis=-1, dtype=np.int64)
    return np.divide(inter, union, out=np.zeros(inter.shape, dtype=np.float64), where=union > 0)


def jaccard_homogenisation(
    consumed: ArrayLike, user_vectors: ArrayLike, ideal_consumed: ArrayLike, rng: np.random.Generator | None = None
) -> float | NDArray[np.float64]:
    """Chaney, Stewart & Engelhardt (2018, RecSys) homogenisation of a recommender.

    Pairs each user with their nearest neighbour by cosine of ``user_vectors`` (the recommender's own user
    representation), then returns mean Jaccard of the pairs' consumed sets (``consumed``, bool ``(..., U, I)``)
    minus the same pairs' mean Jaccard under the ideal recommender (``ideal_consumed``). Positive values mean
    the recommender makes similar users consume more alike than perfect knowledge of their tastes would.
    """
    nn = nearest_neighbours(user_vectors, rng)
    diff = pair_jaccard(consumed, nn) - pair_jaccard(ideal_consumed, nn)
    out = diff.mean(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


# --------------------------------------------------------------------------- polarisation


def polarisation(leanings: ArrayLike, axis: int = -1) -> float | NDArray[np.float64]:
    """Polarisation as the population variance of leanings along ``axis`` (e.g. ``(T, U)`` -> one per step).

    Variance is the "dispersion" measure of DiMaggio, Evans & Bryson (1996, Am. J. Sociology): for leanings
    in [-1, 1] it is 0 under consensus and 1 when half sit at each pole. It rises with spread, not with
    the number of modes; pair it with :func:`bimodality_coefficient` to see a split into camps. ``nan``
    entries are ignored; an all-``nan`` or empty slice gives ``nan``.
    """
    x = np.asarray(leanings, dtype=np.float64)
    cnt = np.sum(~np.isnan(x), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=axis, keepdims=True) / np.expand_dims(np.maximum(cnt, 1), axis)
        var = np.nansum((x - mean) ** 2, axis=axis) / np.maximum(cnt, 1)
    var = np.where(cnt > 0, var, np.nan)
    return float(var) if np.ndim(var) == 0 else var


def bimodality_coefficient(leanings: ArrayLike, axis: int = -1) -> float | NDArray[np.float64]:
    """Sarle's sample bimodality coefficient along ``axis``; above 5/9 (uniform) suggests two camps.

    BC = (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))) with g the sample skewness and k the sample excess kurtosis
    (Pfister et al. 2013, Frontiers in Psychology). Needs n >= 4 values and non-zero spread, else ``nan``.
    """
    x = np.asarray(leanings, dtype=np.float64)
    n = x.shape[axis]
    if n < 4:
        shape = np.delete(np.array(x.shape), axis % x.ndim) if x.ndim else ()
        out = np.full(tuple(shape), np.nan)
        return float(out) if out.ndim == 0 else out
    d = x - x.mean(axis=axis, keepdims=True)
    m2 = (d**2).mean(axis=axis)
    m3 = (d**3).mean(axis=axis)
    m4 = (d**4).mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        g1 = m3 / m2**1.5
        G1 = g1 * np.sqrt(n * (n - 1)) / (n - 2)  # bias-corrected skewness
        g2 = m4 / m2**2 - 3.0
        G2 = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))  # bias-corrected excess kurtosis
        bc = (G1**2 + 1.0) / (G2 + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    bc = np.where(m2 > 0, bc, np.nan)
    return float(bc) if np.ndim(bc) == 0 else bc


# --------------------------------------------------------------------------- concentration


def gini(impressions_per_creator: ArrayLike, axis: int = -1) -> float | NDArray[np.float64]:
    """Gini coefficient of exposure across creators (0 = equal reach, (n-1)/n = one creator gets all).

    G = sum_i (2i - n - 1) x_(i) / (n sum x) over ascending-sorted values. All-zero input gives 0 (nobody
    was favoured); an empty slice gives ``nan``; negative counts raise ``ValueError``.
    """
    x = np.asarray(impressions_per_creator, dtype=np.float64)
    if np.any(x < 0):
        raise ValueError("impression counts must be non-negative")
    x = np.sort(np.moveaxis(x, axis, -1), axis=-1)
    n = x.shape[-1]
    if n == 0:
        out = np.full(x.shape[:-1], np.nan)
        return float(out) if out.ndim == 0 else out
    total = x.sum(axis=-1)
    w = 2.0 * np.arange(1, n + 1) - n - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(total > 0, (x * w).sum(axis=-1) / (n * np.where(total > 0, total, 1.0)), 0.0)
    return float(g) if np.ndim(g) == 0 else g
