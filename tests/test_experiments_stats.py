"""The statistics of online experiments (experiments/analysis.py), checked on simulated experiments with known effects.

Each statistical test simulates thousands of experiments at once (arrays of experiments × units) and prints what it
measured (``pytest -s tests/test_experiments_stats.py``); docs/experiments.md ("Statistics") quotes those lines.
Outcomes are overdispersed counts (gamma-Poisson: engagements per person), skewed and with unequal variances across
arms, not the normal data the intervals assume. Seeds are fixed, so the numbers are reproducible.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy import stats

from glassfeed.experiments.analysis import (
    BREACH,
    INCONCLUSIVE,
    PASS,
    Moments,
    cumulative_moments,
    cuped,
    difference,
    difference_from_moments,
    guardrail_verdict,
    msprt,
    msprt_difference,
    ratio_difference,
    srm_check,
    tau_for_horizon,
)

EXPERIMENTS = 2000  # simulated experiments per statistical check
COVERAGE_BAND = (0.93, 0.97)


def _counts(rng: np.random.Generator, mean: float, shape: float, size: tuple[int, ...]) -> np.ndarray:
    """Gamma-Poisson counts: mean ``mean``, variance mean + mean² / shape."""
    return rng.poisson(rng.gamma(shape, mean / shape, size=size)).astype(np.float64)


def _rate(hits: np.ndarray) -> str:
    p = float(np.mean(hits))
    return f"{p:.4f} ± {np.sqrt(p * (1 - p) / hits.size):.4f}"


# ---------------------------------------------------------------------------------------------------------------
# Fixed-horizon intervals


def test_welch_and_relative_intervals_cover_the_true_effect():
    rng = np.random.default_rng(1801)
    mc, mt = 3.0, 3.3  # true difference 0.3, relative +10%
    yc = _counts(rng, mc, 0.8, (EXPERIMENTS, 700))  # variance 14.25
    yt = _counts(rng, mt, 0.6, (EXPERIMENTS, 500))  # variance 21.45: unequal variances and sizes
    d = difference(yt, yc)
    assert d.diff.shape == (EXPERIMENTS,)
    covered = (d.low <= mt - mc) & (mt - mc <= d.high)
    rel_covered = (d.rel_low <= mt / mc - 1) & (mt / mc - 1 <= d.rel_high)
    print(
        f"\nWelch 95% CI coverage over {EXPERIMENTS} experiments (n 500/700, gamma-Poisson): {_rate(covered)}; "
        f"relative (delta method): {_rate(rel_covered)}; mean width {np.mean(d.high - d.low):.3f}"
    )
    assert COVERAGE_BAND[0] <= covered.mean() <= COVERAGE_BAND[1]
    assert COVERAGE_BAND[0] <= rel_covered.mean() <= COVERAGE_BAND[1]


def test_ratio_metric_interval_covers_and_the_per_impression_one_does_not():
    """A share of impressions (e.g. divisive share) per arm: people differ in how many impressions they get and in
    their own share, so impressions are clustered by person."""
    rng = np.random.default_rng(1802)
    n = 600
    imp_c = 1.0 + _counts(rng, 20.0, 1.0, (EXPERIMENTS, n))
    imp_t = 1.0 + _counts(rng, 20.0, 1.0, (EXPERIMENTS, n))
    share_c = rng.beta(2.0, 8.0, size=(EXPERIMENTS, n))  # mean 0.20
    share_t = rng.beta(2.2, 7.8, size=(EXPERIMENTS, n))  # mean 0.22
    div_c, div_t = rng.binomial(imp_c.astype(np.int64), share_c), rng.binomial(imp_t.astype(np.int64), share_t)
    # the population ratio: E[divisive] / E[impressions] = E[share] (share independent of impressions)
    true_rel = 0.22 / 0.20 - 1
    d = ratio_difference(div_t, imp_t, div_c, imp_c)
    covered = (d.low <= 0.02) & (d.high >= 0.02)
    rel_covered = (d.rel_low <= true_rel) & (true_rel <= d.rel_high)
    # the naive interval treats every impression as independent (binomial variance): too narrow
    nt, nc = imp_t.sum(-1), imp_c.sum(-1)
    pt, pc = div_t.sum(-1) / nt, div_c.sum(-1) / nc
    se_naive = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    naive_covered = np.abs(pt - pc - 0.02) <= 1.96 * se_naive
    print(
        f"\nratio metric (delta method) 95% CI coverage: {_rate(covered)}; relative: {_rate(rel_covered)}; "
        f"per-impression binomial CI: {_rate(naive_covered)}"
    )
    assert COVERAGE_BAND[0] <= covered.mean() <= COVERAGE_BAND[1]
    assert COVERAGE_BAND[0] <= rel_covered.mean() <= COVERAGE_BAND[1]
    assert naive_covered.mean() < 0.85


def test_cuped_covers_and_narrows_with_a_correlated_pre_period():
    rng = np.random.default_rng(1803)
    n, effect = 500, 0.10  # each person's rate rises by 10% under treatment
    rate_t = rng.gamma(1.0, 3.0, size=(EXPERIMENTS, n))
    rate_c = rng.gamma(1.0, 3.0, size=(EXPERIMENTS, n))
    x_t, x_c = rng.poisson(2 * rate_t).astype(float), rng.poisson(2 * rate_c).astype(float)  # two pre-period weeks
    y_t, y_c = rng.poisson(rate_t * (1 + effect)).astype(float), rng.poisson(rate_c).astype(float)
    true_diff = 3.0 * effect
    c = cuped(y_t, y_c, x_t, x_c)
    covered = (c.adjusted.low <= true_diff) & (true_diff <= c.adjusted.high)
    raw_covered = (c.raw.low <= true_diff) & (true_diff <= c.raw.high)
    rel_covered = (c.adjusted.rel_low <= effect) & (effect <= c.adjusted.rel_high)
    width_ratio = (c.adjusted.high - c.adjusted.low) / (c.raw.high - c.raw.low)
    print(
        f"\nCUPED 95% CI coverage: {_rate(covered)} (unadjusted {_rate(raw_covered)}; relative {_rate(rel_covered)}); "
        f"correlation {np.mean(c.correlation):.3f}, variance reduction {np.mean(c.variance_reduction):.3f} "
        f"(ρ² {np.mean(c.correlation**2):.3f}), width adjusted/raw {np.mean(width_ratio):.3f}, "
        f"narrower in {np.mean(width_ratio < 1):.3f} of experiments; "
        f"power at α=0.05: {np.mean(c.adjusted.p_value < 0.05):.3f} vs {np.mean(c.raw.p_value < 0.05):.3f} unadjusted"
    )
    assert COVERAGE_BAND[0] <= covered.mean() <= COVERAGE_BAND[1]
    assert COVERAGE_BAND[0] <= rel_covered.mean() <= COVERAGE_BAND[1]
    assert np.mean(width_ratio) < 0.8 and np.mean(width_ratio < 1) > 0.99
    assert abs(np.mean(c.variance_reduction) - np.mean(c.correlation**2)) < 0.02
    assert np.mean(c.adjusted.p_value < 0.05) > np.mean(c.raw.p_value < 0.05)

    # an unrelated covariate: no reduction to speak of, and no harm to coverage
    z_t, z_c = rng.normal(size=(EXPERIMENTS, n)), rng.normal(size=(EXPERIMENTS, n))
    u = cuped(y_t, y_c, z_t, z_c)
    u_covered = (u.adjusted.low <= true_diff) & (true_diff <= u.adjusted.high)
    print(f"CUPED, unrelated covariate: coverage {_rate(u_covered)}, reduction {np.mean(u.variance_reduction):.4f}")
    assert COVERAGE_BAND[0] <= u_covered.mean() <= COVERAGE_BAND[1]
    assert abs(np.mean(u.variance_reduction)) < 0.01


# ---------------------------------------------------------------------------------------------------------------
# Sample-ratio mismatch


def _hash_arm(experiment: str, user: str, arms: int = 2) -> int:
    return int.from_bytes(hashlib.blake2b(f"{experiment}:{user}".encode(), digest_size=8).digest(), "big") % arms


def test_srm_passes_a_hash_split_and_flags_an_imbalance():
    arms = np.array([_hash_arm("exp-18", f"u{i}") for i in range(100_000)])
    counts = np.bincount(arms, minlength=2)
    ok = srm_check(counts, [0.5, 0.5])
    print(f"\nSRM, blake2b('exp-18:u<i>') mod 2 over 100,000 users: {counts.tolist()}, p = {float(ok.p_value):.3f}")
    assert not ok.mismatch and ok.p_value > 0.001

    # 50.5 / 49.5 of 100k: chi² = 10, p = 0.0016 — just short of α = 0.001 (flagged at 0.01)
    edge = srm_check([50_500, 49_500], [0.5, 0.5])
    assert float(edge.chi2) == pytest.approx(10.0)
    assert float(edge.p_value) == pytest.approx(stats.chi2.sf(10.0, 1)) and 0.001 < edge.p_value < 0.002
    assert not edge.mismatch and srm_check([50_500, 49_500], [0.5, 0.5], alpha=0.01).mismatch
    # 50.6 / 49.4 of 100k, or 50.5 / 49.5 of 200k: flagged at 0.001
    assert srm_check([50_600, 49_400], [0.5, 0.5]).mismatch
    assert srm_check([101_000, 99_000], [0.5, 0.5]).mismatch
    # unequal configured shares, three arms; the shares need not sum to 1
    assert not srm_check([80_120, 9_950, 9_930], [8, 1, 1]).mismatch
    assert srm_check([80_120, 9_950, 9_930], [1, 1, 1]).mismatch
    print(f"SRM, 50.5/49.5 of 100k: chi2 {float(edge.chi2):.1f}, p {float(edge.p_value):.5f}")


def test_srm_false_alarm_rate_matches_alpha():
    rng = np.random.default_rng(1804)
    n = 200_000
    t = rng.binomial(100_000, 0.5, size=n)
    res = srm_check(np.stack([t, 100_000 - t], axis=-1))
    expected = 2 * stats.binom.sf(50_520, 100_000, 0.5)  # |T - 50,000| ≥ 521 is χ² ≥ 10.83
    print(
        f"\nSRM false alarms at α=0.001 over {n} fair 100k splits: {int(res.mismatch.sum())} "
        f"({res.mismatch.mean():.5f}; exact binomial probability {expected:.5f})"
    )
    assert res.mismatch.shape == (n,)
    assert 0.0005 < res.mismatch.mean() < 0.0015


def test_srm_refuses_bad_input():
    for counts, shares in (([10], [1.0]), ([10, -1], [1, 1]), ([10, 10], [1, 0]), ([10, 10], [1, 1, 1])):
        with pytest.raises(ValueError):
            srm_check(counts, shares)


# ---------------------------------------------------------------------------------------------------------------
# Always-valid sequential inference


DAYS, DAILY = 30, 100  # looks, and new users per arm per day
MEAN, SHAPE = 3.0, 0.8
SIGMA2 = MEAN + MEAN**2 / SHAPE  # the outcome's variance, known from the plan (e.g. a pre-period)


def _daily_sums(rng: np.random.Generator, mean: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-day count, sum and sum of squares of each experiment's new users in one arm: (EXPERIMENTS, DAYS)."""
    s = np.empty((EXPERIMENTS, DAYS))
    q = np.empty((EXPERIMENTS, DAYS))
    for day in range(DAYS):
        y = _counts(rng, mean, SHAPE, (EXPERIMENTS, DAILY))
        s[:, day], q[:, day] = y.sum(-1), (y * y).sum(-1)
    return np.full((EXPERIMENTS, DAYS), float(DAILY)), s, q


def _run(seed: int, effect: float):
    rng = np.random.default_rng(seed)
    treat = cumulative_moments(*_daily_sums(rng, MEAN + effect))
    ctrl = cumulative_moments(*_daily_sums(rng, MEAN))
    tau = tau_for_horizon(SIGMA2 * 2 / (DAYS * DAILY))
    return msprt_difference(treat, ctrl, tau=tau), difference_from_moments(treat, ctrl), tau


def test_msprt_peeking_daily_keeps_false_positives_while_a_naive_test_inflates():
    seq, naive, tau = _run(1805, effect=0.0)
    assert seq.p_value.shape == (EXPERIMENTS, DAYS)
    msprt_fp = seq.reject[:, -1]  # rejected at some look up to day 30 (the p-value is a running minimum)
    naive_fp = (naive.p_value < 0.05).any(axis=-1)  # a Welch test at every daily look
    final_fp = naive.p_value[:, -1] < 0.05  # one Welch test at the planned end
    print(
        f"\nno effect, {EXPERIMENTS} experiments × {DAYS} daily looks ({DAILY} new users per arm per day, "
        f"τ={tau:.4f}): "
        f"mSPRT rejects in {_rate(msprt_fp)}; naive Welch peeked daily {_rate(naive_fp)}; "
        f"Welch once at day {DAYS} {_rate(final_fp)}"
    )
    assert msprt_fp.mean() <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / EXPERIMENTS)
    assert naive_fp.mean() >= 0.15 and naive_fp.mean() >= 3 * max(msprt_fp.mean(), 0.01)
    assert 0.035 <= final_fp.mean() <= 0.065
    # the running p-value never rises, the confidence sequence never widens
    assert np.all(np.diff(seq.p_value, axis=-1) <= 0)
    lo, hi = np.nan_to_num(seq.low, nan=np.inf), np.nan_to_num(seq.high, nan=-np.inf)
    assert np.all(np.diff(lo, axis=-1) >= 0) and np.all(np.diff(hi, axis=-1) <= 0)
    # p ≤ α exactly when 0 has left the confidence sequence
    excluded = ~((seq.low < 0) & (seq.high > 0))
    assert np.array_equal(seq.reject, excluded)


@pytest.mark.parametrize(("effect", "min_power"), [(0.45, 0.8), (0.3, None)])
def test_msprt_rejects_a_real_effect_and_its_sequence_covers_it(effect, min_power):
    """+15% on the mean of 3 is rejected in most experiments within 30 days; +10% (where one Welch test at day 30
    has about 84% power) shows the price of looking every day: fewer and later rejections."""
    seq, naive, _ = _run(1806, effect=effect)
    power = seq.reject[:, -1]
    fixed_power = naive.p_value[:, -1] < 0.05
    first = seq.first_rejection[power] + 1
    covered = (seq.low[:, -1] <= effect) & (effect <= seq.high[:, -1])  # at every look: the running intersection
    print(
        f"\neffect +{effect} (+{effect / MEAN:.0%}): mSPRT rejects by day {DAYS} in {_rate(power)}, median day of "
        f"rejection {np.median(first):.0f}; Welch once at day {DAYS}: {_rate(fixed_power)}; "
        f"the true effect inside the confidence sequence at every look in {_rate(covered)}"
    )
    if min_power is not None:
        assert power.mean() >= min_power
    assert power.mean() < fixed_power.mean()
    assert covered.mean() >= 0.95 - 2 * np.sqrt(0.05 * 0.95 / EXPERIMENTS)


def test_msprt_formulas_on_one_experiment():
    # one look, by hand: Λ = sqrt(V/(V+τ²)) exp(τ² θ̂² / (2V(V+τ²)))
    seq = msprt([0.5], [0.01], tau=0.2, alpha=0.05)
    v, t2 = 0.01, 0.04
    lam = np.sqrt(v / (v + t2)) * np.exp(t2 * 0.25 / (2 * v * (v + t2)))
    assert float(seq.log_lr[0]) == pytest.approx(np.log(lam))
    assert float(seq.p_value[0]) == pytest.approx(min(1.0, 1 / lam))
    h = np.sqrt(v * (v + t2) / t2 * (2 * np.log(20) + np.log((v + t2) / v)))
    assert (float(seq.low[0]), float(seq.high[0])) == pytest.approx((0.5 - h, 0.5 + h))
    assert int(seq.first_rejection) == 0
    # a look without variance carries no evidence; tau must be positive
    nan_look = msprt([0.5, 0.5], [np.nan, 0.01], tau=0.2)
    assert float(nan_look.p_value[0]) == 1.0 and np.isinf(nan_look.high[0])
    with pytest.raises(ValueError):
        msprt([0.1], [0.1], tau=0.0)
    # the tuned τ: r = c + log(1 + r), so the boundary at the horizon is |z| ≈ 3.03 at α = 0.05
    r = float(tau_for_horizon(1.0)) ** 2
    assert r == pytest.approx(2 * np.log(20) + np.log1p(r))
    z2 = (1 + 1 / r) * (2 * np.log(20) + np.log1p(r))
    assert np.sqrt(z2) == pytest.approx(3.03, abs=0.01)


# ---------------------------------------------------------------------------------------------------------------
# Guardrails


@pytest.mark.parametrize(
    ("low", "high", "limits", "verdict"),
    [
        (-0.02, 0.03, {"max_increase": 0.05}, PASS),  # entirely under +5%
        (0.06, 0.12, {"max_increase": 0.05}, BREACH),  # entirely over +5%
        (0.01, 0.09, {"max_increase": 0.05}, INCONCLUSIVE),  # straddles +5%
        (-0.10, 0.04, {"max_increase": 0.05}, PASS),  # a fall is fine for a "must not rise" guardrail
        (-0.03, 0.05, {"max_increase": 0.05}, PASS),  # the limit itself is allowed
        (-0.04, 0.01, {"max_decrease": 0.05}, PASS),
        (-0.09, -0.06, {"max_decrease": 0.05}, BREACH),
        (-0.07, 0.00, {"max_decrease": 0.05}, INCONCLUSIVE),
        (-0.01, 0.01, {"max_increase": 0.02, "max_decrease": 0.02}, PASS),
        (-0.03, 0.01, {"max_increase": 0.02, "max_decrease": 0.02}, INCONCLUSIVE),
        (0.03, 0.04, {"max_increase": 0.02, "max_decrease": 0.5}, BREACH),
        (-0.6, 0.04, {"max_increase": 0.02, "max_decrease": 0.5}, INCONCLUSIVE),
        (float("nan"), float("nan"), {"max_increase": 0.05}, INCONCLUSIVE),
        (0.0, 0.0, {"max_increase": 0.0}, PASS),  # "must not rise at all", measured exactly flat
    ],
)
def test_guardrail_verdict(low, high, limits, verdict):
    assert guardrail_verdict(low, high, **limits) == verdict


def test_guardrail_verdict_refuses_bad_limits():
    with pytest.raises(ValueError):
        guardrail_verdict(-0.1, 0.1)
    with pytest.raises(ValueError):
        guardrail_verdict(-0.1, 0.1, max_increase=-0.05)
    with pytest.raises(ValueError):
        guardrail_verdict(0.1, -0.1, max_increase=0.05)


def test_guardrail_on_a_difference():
    rng = np.random.default_rng(1807)
    ctrl = _counts(rng, 0.20, 2.0, (20_000,))
    d = difference(_counts(rng, 0.20 * 1.15, 2.0, (20_000,)), ctrl)  # +15% against a 5% limit
    assert guardrail_verdict(d.rel_low, d.rel_high, max_increase=0.05) == BREACH
    d = difference(_counts(rng, 0.20, 2.0, (20_000,)), ctrl)
    assert guardrail_verdict(d.rel_low, d.rel_high, max_increase=0.05) in (PASS, INCONCLUSIVE)


# ---------------------------------------------------------------------------------------------------------------
# Against scipy, shapes and edge cases


def test_difference_matches_scipy_welch():
    rng = np.random.default_rng(1808)
    yt, yc = rng.exponential(2.0, 300), rng.exponential(1.7, 450)
    d = difference(yt, yc, alpha=0.1)
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    ci = ref.confidence_interval(0.9)
    assert float(d.p_value) == pytest.approx(ref.pvalue)
    assert (float(d.low), float(d.high)) == pytest.approx((ci.low, ci.high))
    assert float(d.df) == pytest.approx(ref.df)


def test_batch_equals_one_at_a_time_and_sums_equal_samples():
    rng = np.random.default_rng(1809)
    yt, yc = rng.normal(1.0, 1.0, (4, 50)), rng.normal(1.2, 2.0, (4, 70))
    batch = difference(yt, yc)
    for i in range(4):
        one = difference(yt[i], yc[i])
        assert float(one.high) == pytest.approx(batch.high[i])
        assert float(one.rel_low) == pytest.approx(batch.rel_low[i])
    m = Moments.from_sums(50, yt[0].sum(), (yt[0] ** 2).sum())
    ref = Moments.of(yt[0])
    assert (float(m.mean), float(m.var)) == pytest.approx((float(ref.mean), float(ref.var)))


def test_degenerate_inputs_give_nan_not_errors_and_json_is_plain():
    d = difference([1.0], [2.0, 3.0])  # one treated unit: no variance
    assert np.isnan(d.high) and np.isnan(d.p_value)
    d = difference([1.0, 2.0], [0.0, 0.0])  # control mean 0: no relative difference
    assert np.isnan(d.rel) and np.isfinite(d.diff)
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert out["rel"] is None and out["treat"]["n"] == 2.0
    seq = msprt([0.1, 0.2], [0.05, 0.02], tau=0.1)
    assert isinstance(seq.to_dict()["p_value"], list)
    with pytest.raises(ValueError):
        cuped([1.0, 2.0], [1.0, 2.0], [1.0], [1.0, 2.0])
