"""The cluster bootstrap ``glassfeed audit`` puts beside every number: viewers are resampled, not impressions.

One viewer's impressions are not independent (the same person's tastes, sessions and feed), so an interval that
treats each impression as a draw is too narrow whenever a few people see much of a feed. The unit resampled here
is the viewer (Davison & Hinkley 1997, "Bootstrap Methods and their Application", §3.8, resampling clusters; Field &
Welsh 2007, "Bootstrapping clustered data", JRSS B 69:369-390): each replicate draws, within each stratum, as many
viewers as it holds, with replacement, and every statistic is recomputed from the drawn viewers' per-viewer sums.
A replicate is a vector of weights, one per viewer (how many times it was drawn), so every statistic here is a
function of a ``(replicates, viewers)`` weight matrix, batch-first; the point estimate is the same function at
weights of one.

Strata are the sets of policies a viewer was seen under (``strata_of``): with disjoint arms (one store per policy,
or an experiment's arms) each arm keeps its size in every replicate; a viewer seen under two policies keeps one
weight in both, so a comparison between them keeps their correlation.

Intervals are percentile intervals of the replicates, centred on the estimate (``percentile_interval``). Replicates
in which a statistic is undefined (a zero denominator) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = ["strata_of", "bootstrap_weights", "weight_batches", "weighted_ratio", "percentile_interval"]


def strata_of(membership: npt.ArrayLike) -> IntArray:
    """A stratum id per unit from a ``(units, k)`` bool membership matrix: units with the same row share one."""
    m = np.asarray(membership, dtype=bool)
    if m.shape[0] == 0:
        return np.zeros(0, np.int64)
    _, inv = np.unique(m.reshape(m.shape[0], -1), axis=0, return_inverse=True)
    return np.asarray(inv, np.int64).ravel()


def bootstrap_weights(strata: npt.ArrayLike, reps: int, rng: np.random.Generator) -> FloatArray:
    """``(reps, units)`` resampling weights: in each replicate every stratum's n units are drawn n times with
    replacement, and a unit's weight is how often it was drawn (so each stratum's weights sum to its size).

    The draws consume ``rng`` row by row (one uniform per unit and replicate), so drawing 1,000 replicates at once
    or in batches of any size from the same generator gives the same weights."""
    s = np.asarray(strata, dtype=np.int64).ravel()
    n = s.size
    if reps <= 0 or n == 0:
        return np.zeros((max(reps, 0), n))
    order = np.argsort(s, kind="stable")
    sizes = np.bincount(s)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    s_sorted = s[order]
    u = rng.random((reps, n))
    slot = np.minimum((u * sizes[s_sorted]).astype(np.int64), sizes[s_sorted] - 1)  # position within the stratum
    picked = order[starts[s_sorted] + slot]  # the unit drawn for each slot
    flat = picked + n * np.arange(reps, dtype=np.int64)[:, None]
    return np.bincount(flat.ravel(), minlength=reps * n).reshape(reps, n).astype(np.float64)


def weight_batches(strata: npt.ArrayLike, reps: int, seed: int, batch_values: int, width: int) -> Iterator[FloatArray]:
    """``bootstrap_weights`` for ``reps`` replicates from ``seed``, in batches whose widest intermediate
    (``rows x max(width, units)`` numbers) stays under ``batch_values``; the concatenated batches do not depend on
    the batch size (statistics computed from them may, by rounding in the matrix products)."""
    s = np.asarray(strata, dtype=np.int64).ravel()
    rng = np.random.default_rng(seed)
    rows = max(1, batch_values // max(width, s.size, 1))
    done = 0
    while done < reps:
        k = min(rows, reps - done)
        yield bootstrap_weights(s, k, rng)
        done += k


def weighted_ratio(weights: npt.ArrayLike, num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    """Σ w·num / Σ w·den over the last axis of ``weights`` (``(..., units)``): a ratio of per-unit sums (e.g.
    engaged impressions / impressions) under each replicate's weights; NaN where the denominator is 0."""
    w = np.asarray(weights, dtype=np.float64)
    top = w @ np.asarray(num, dtype=np.float64)
    bottom = w @ np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)


def percentile_interval(
    replicates: npt.ArrayLike, confidence: float, estimate: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, IntArray]:
    """The ``confidence`` percentile interval of ``replicates`` along the last axis, from order statistics (no
    interpolation: interpolating towards an infinite replicate would give NaN): (low, high, undefined), where
    ``undefined`` counts the NaN replicates left out; NaN bounds when every replicate is undefined. Infinite
    replicates (e.g. a reach ratio over a replicate with no control reach) stay, so a bound may be infinite.

    With ``estimate`` (the statistic on the original sample, batch shape) the interval is moved by
    ``estimate - median(replicates)``: the replicates' spread, centred on the estimate. For a statistic whose
    replicates centre on it (a ratio, a difference) this is the percentile interval; for one whose resampling is
    biased (a Gini coefficient: drawing a viewer twice concentrates creators' counts, so every replicate may lie
    above the estimate) the plain percentile interval can miss the estimate altogether, and Efron's bias-corrected
    one degenerates there, while this keeps the spread and drops the resampling's shift (the bootstrap's bias
    estimate, Efron & Tibshirani 1993, §10.2, with the median). It does not correct the estimate's own bias."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    r = np.asarray(replicates, dtype=np.float64)
    n = (~np.isnan(r)).sum(axis=-1)
    ordered = np.sort(r, axis=-1)  # NaN sorts last: the first n are the defined replicates

    def at(q: float) -> FloatArray:
        k = np.clip(np.ceil(q * n).astype(np.int64) - 1, 0, np.maximum(n - 1, 0))
        v = np.take_along_axis(ordered, k[..., None], axis=-1)[..., 0]
        return np.where(n > 0, v, np.nan)

    a = (1.0 - confidence) / 2.0
    lo, hi = at(a), at(1.0 - a)
    if estimate is not None:
        est = np.asarray(estimate, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            shift = est - at(0.5)
            shift = np.where(np.isfinite(shift), shift, 0.0)
        lo, hi = lo + shift, hi + shift
    return lo, hi, (r.shape[-1] - n).astype(np.int64)
