"""The statistics of online experiments: pure functions over arrays, batch-first.

Every function reduces over the **last axis** (a unit's outcomes, or an experiment's looks) and broadcasts over the
leading ones, so one call analyses one experiment (1-D input, 0-d results) or thousands of simulated ones (2-D
input, 1-D results). Nothing here reads the store or knows what an arm is; the experiment service turns the event
log into per-unit outcomes and calls these.

- ``difference``: difference in means with a Welch (unequal-variance) interval; the relative difference with a
  delta-method interval. ``ratio_moments`` / ``ratio_difference``: the same for a ratio of sums per unit (e.g. the
  divisive share of a person's impressions), linearised by the delta method.
- ``cuped``: variance reduction with a pre-period covariate (Deng et al. 2013).
- ``srm_check``: the sample-ratio-mismatch chi-square test.
- ``msprt`` / ``msprt_difference``: always-valid p-values and confidence sequences (the mixture sequential
  probability ratio test with a normal mixing distribution, Johari et al.), safe to look at after every day.
- ``guardrail_verdict``: pass / breach / inconclusive for an interval on a relative difference against a limit.

Conventions: ``alpha`` is the two-sided error level (0.05 gives 95% intervals); sample variances use ``n - 1``;
a quantity that cannot be computed (an arm with fewer than 2 units, a zero control mean, no variance) is NaN, never
an exception. ``to_dict()`` on each result gives plain floats (NaN and infinities as ``None``) for JSON reports.
The formulas, references and the coverage and false-positive rates measured by simulation are in
docs/experiments.md ("Statistics").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]

#: What ``guardrail_verdict`` returns.
PASS, BREACH, INCONCLUSIVE = "pass", "breach", "inconclusive"
VERDICTS: tuple[str, ...] = (PASS, BREACH, INCONCLUSIVE)

__all__ = [
    "Moments",
    "Difference",
    "Cuped",
    "SampleRatio",
    "Sequential",
    "difference",
    "difference_from_moments",
    "ratio_moments",
    "ratio_difference",
    "cuped",
    "srm_check",
    "msprt_log_lr",
    "msprt",
    "msprt_difference",
    "cumulative_moments",
    "tau_for_horizon",
    "guardrail_verdict",
    "PASS",
    "BREACH",
    "INCONCLUSIVE",
    "VERDICTS",
]


def _f(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _plain(value: Any) -> Any:
    """A result field as JSON-friendly Python: floats (non-finite as None), bools, nested lists."""
    if isinstance(value, Moments):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _plain(value.item())
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


class _Plain:
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Per-arm summaries


@dataclass(frozen=True)
class Moments(_Plain):
    """One arm's sample: its number of units ``n``, the mean outcome per unit and the sample variance (``n - 1``).

    Each field has the batch shape (``()`` for one experiment). The analysis needs only these three numbers per arm,
    so a service can keep running sums instead of every unit's outcome (``from_sums``)."""

    n: FloatArray
    mean: FloatArray
    var: FloatArray

    @classmethod
    def of(cls, y: npt.ArrayLike) -> Moments:
        """Moments of outcomes ``y`` along the last axis (one value per unit)."""
        a = _f(y)
        n = np.full(a.shape[:-1], a.shape[-1], dtype=np.float64)
        with np.errstate(all="ignore"):
            mean = a.mean(axis=-1) if a.shape[-1] else np.full(a.shape[:-1], np.nan)
            var = a.var(axis=-1, ddof=1) if a.shape[-1] > 1 else np.full(a.shape[:-1], np.nan)
        return cls(n, _f(mean), _f(var))

    @classmethod
    def from_sums(cls, n: npt.ArrayLike, total: npt.ArrayLike, total_sq: npt.ArrayLike) -> Moments:
        """Moments from the count, sum and sum of squares of the outcomes: mean = S/n,
        var = (Q - S²/n) / (n - 1) (clipped at 0 against rounding; NaN when n < 2)."""
        n_, s, q = _f(n), _f(total), _f(total_sq)
        with np.errstate(all="ignore"):
            mean = np.where(n_ > 0, s / n_, np.nan)
            var = np.where(n_ > 1, np.maximum(q - s * s / n_, 0.0) / (n_ - 1.0), np.nan)
        return cls(n_, _f(mean), _f(var))

    @property
    def var_mean(self) -> FloatArray:
        """The variance of the mean: var / n."""
        with np.errstate(all="ignore"):
            return _f(self.var / self.n)


def ratio_moments(num: npt.ArrayLike, den: npt.ArrayLike) -> Moments:
    """A ratio-of-sums metric R = Σ num / Σ den over an arm's units (e.g. divisive impressions / impressions, each
    summed per person), as ``Moments`` of its delta-method linearisation.

    The unit of analysis (the person, who is randomised) is not the unit of the metric (the impression), so the
    impressions are not independent and a per-impression variance would be too small. The delta method linearises
    R around the means: R - ρ ≈ mean(L) with L_i = (num_i - R·den_i) / mean(den), so

        Var(R) ≈ Var(L) / n = (s²_num - 2 R s_num,den + R² s²_den) / (n · mean(den)²)

    (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD). The returned
    ``mean`` is R and ``var`` is Var(L), so ``var / n`` is Var(R) and ``difference_from_moments`` applies as for a
    per-unit mean. NaN when Σ den = 0 or n < 2."""
    x, d = _f(num), _f(den)
    n = x.shape[-1]
    with np.errstate(all="ignore"):
        mx, md = x.mean(axis=-1), d.mean(axis=-1)
        r = mx / md
        lin = (x - r[..., None] * d) / md[..., None]
        var = lin.var(axis=-1, ddof=1) if n > 1 else np.full(r.shape, np.nan)
    return Moments(np.full(r.shape, n, dtype=np.float64), _f(np.where(md != 0, r, np.nan)), _f(var))


# ---------------------------------------------------------------------------------------------------------------
# Fixed-horizon difference


@dataclass(frozen=True)
class Difference(_Plain):
    """Treatment minus control, absolute and relative, with ``1 - alpha`` intervals (fields: the batch shape).

    ``diff`` = mean_t - mean_c, ``se`` its standard error, ``df`` Welch's degrees of freedom, [``low``, ``high``] the
    Welch interval, ``p_value`` the two-sided Welch p-value of diff = 0. ``rel`` = mean_t / mean_c - 1, ``rel_se`` its
    delta-method standard error, [``rel_low``, ``rel_high``] its normal interval."""

    alpha: float
    treat: Moments
    ctrl: Moments
    diff: FloatArray
    se: FloatArray
    df: FloatArray
    low: FloatArray
    high: FloatArray
    p_value: FloatArray
    rel: FloatArray
    rel_se: FloatArray
    rel_low: FloatArray
    rel_high: FloatArray


def difference_from_moments(treat: Moments, ctrl: Moments, alpha: float = 0.05) -> Difference:
    """The difference in means with a Welch interval, and the relative difference with a delta-method interval.

    With v_t = s²_t / n_t and v_c = s²_c / n_c (the variances of the two means):

        diff = ȳ_t - ȳ_c,   se = √(v_t + v_c),
        df   = (v_t + v_c)² / (v_t² / (n_t - 1) + v_c² / (n_c - 1))          (Welch–Satterthwaite)
        CI   = diff ± t_{1-α/2, df} · se,   p = 2 · P(T_df > |diff| / se)

    (Welch 1947, Biometrika 34:28–35; Satterthwaite 1946, Biometrics Bulletin 2:110–114): no assumption that the
    arms have equal variances, which a treatment that changes behaviour rarely keeps.

    The relative difference rel = ȳ_t / ȳ_c - 1 is a ratio of two independent means; the delta method gives

        Var(rel) ≈ v_t / ȳ_c² + ȳ_t² · v_c / ȳ_c⁴,   CI = rel ± z_{1-α/2} · √Var(rel)

    (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics: A Practical Guide with Novel Ideas",
    KDD). It is a large-sample interval; it ignores the skew of a ratio when the control mean is itself
    uncertain (se_c / ȳ_c large)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    with np.errstate(all="ignore"):
        vt, vc = treat.var_mean, ctrl.var_mean
        diff = treat.mean - ctrl.mean
        var = vt + vc
        se = np.sqrt(var)
        df = var**2 / (vt**2 / (treat.n - 1.0) + vc**2 / (ctrl.n - 1.0))
        tq = stats.t.ppf(1.0 - alpha / 2.0, df)
        p = 2.0 * stats.t.sf(np.abs(diff) / se, df)
        mc, mt = ctrl.mean, treat.mean
        rel = np.where(mc != 0, mt / mc - 1.0, np.nan)
        rel_se = np.sqrt(vt / mc**2 + mt**2 * vc / mc**4)
        rel_se = np.where(mc != 0, rel_se, np.nan)
        z = stats.norm.ppf(1.0 - alpha / 2.0)
    return Difference(
        alpha=float(alpha),
        treat=treat,
        ctrl=ctrl,
        diff=_f(diff),
        se=_f(se),
        df=_f(df),
        low=_f(diff - tq * se),
        high=_f(diff + tq * se),
        p_value=_f(p),
        rel=_f(rel),
        rel_se=_f(rel_se),
        rel_low=_f(rel - z * rel_se),
        rel_high=_f(rel + z * rel_se),
    )


def difference(y_treat: npt.ArrayLike, y_ctrl: npt.ArrayLike, alpha: float = 0.05) -> Difference:
    """Treatment minus control for per-unit outcomes (last axis: units; the arms may differ in size).
    See ``difference_from_moments`` for the formulas."""
    return difference_from_moments(Moments.of(y_treat), Moments.of(y_ctrl), alpha)


def ratio_difference(
    num_treat: npt.ArrayLike,
    den_treat: npt.ArrayLike,
    num_ctrl: npt.ArrayLike,
    den_ctrl: npt.ArrayLike,
    alpha: float = 0.05,
) -> Difference:
    """Treatment minus control for a ratio-of-sums metric (per-unit numerators and denominators): the arms'
    delta-method ``ratio_moments`` through ``difference_from_moments``."""
    return difference_from_moments(ratio_moments(num_treat, den_treat), ratio_moments(num_ctrl, den_ctrl), alpha)


# ---------------------------------------------------------------------------------------------------------------
# CUPED


@dataclass(frozen=True)
class Cuped(_Plain):
    """CUPED's result: ``adjusted`` (the difference on adjusted outcomes, the one to report), ``raw`` (the same data
    unadjusted), ``theta``, the pooled within-arm ``correlation`` of outcome and covariate, and the
    ``variance_reduction`` achieved: 1 - se²_adjusted / se²_raw (≈ correlation² in large samples)."""

    theta: FloatArray
    correlation: FloatArray
    variance_reduction: FloatArray
    adjusted: Difference
    raw: Difference


def cuped(
    y_treat: npt.ArrayLike,
    y_ctrl: npt.ArrayLike,
    x_treat: npt.ArrayLike,
    x_ctrl: npt.ArrayLike,
    alpha: float = 0.05,
) -> Cuped:
    """CUPED (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled Experiments by Utilizing
    Pre-Experiment Data", WSDM): outcomes ``y`` and each unit's pre-period covariate ``x`` (e.g. the same metric in
    the weeks before the experiment), per arm, units on the last axis.

        θ     = cov(y, x) / var(x)        pooled over the arms, each arm centred on its own means
        y'_i  = y_i - θ · (x_i - x̄)       x̄: the mean of x over both arms
        result = difference(y'_t, y'_c)

    Because x is measured before assignment it is independent of the treatment, so E[x̄_t - x̄_c] = 0 and the
    adjusted difference estimates the same effect, with variance reduced by the factor 1 - ρ² (ρ: the correlation
    of y and x). Centring each arm on its own means keeps a treatment effect on y out of θ. Centring on the common
    x̄ keeps each arm's adjusted mean an estimate of its own mean, so the relative difference keeps its meaning.
    The intervals treat θ as known (its estimation error is O(1/n), negligible at experiment sizes). A unit
    without pre-period data may be given any fixed x (e.g. 0): validity needs only that x is unaffected by the
    treatment; the reduction is smaller."""
    yt, yc, xt, xc = _f(y_treat), _f(y_ctrl), _f(x_treat), _f(x_ctrl)
    if yt.shape != xt.shape or yc.shape != xc.shape:
        raise ValueError("each arm's outcomes and covariates must have the same shape")
    nt, nc = yt.shape[-1], yc.shape[-1]
    with np.errstate(all="ignore"):
        dyt = yt - yt.mean(axis=-1, keepdims=True)
        dyc = yc - yc.mean(axis=-1, keepdims=True)
        dxt = xt - xt.mean(axis=-1, keepdims=True)
        dxc = xc - xc.mean(axis=-1, keepdims=True)
        dof = nt + nc - 2.0
        cxy = ((dyt * dxt).sum(axis=-1) + (dyc * dxc).sum(axis=-1)) / dof
        vx = ((dxt * dxt).sum(axis=-1) + (dxc * dxc).sum(axis=-1)) / dof
        vy = ((dyt * dyt).sum(axis=-1) + (dyc * dyc).sum(axis=-1)) / dof
        theta = np.where(vx > 0, cxy / vx, 0.0)
        corr = cxy / np.sqrt(vx * vy)
        x_bar = (xt.sum(axis=-1) + xc.sum(axis=-1)) / (nt + nc)
        adj_t = yt - theta[..., None] * (xt - x_bar[..., None])
        adj_c = yc - theta[..., None] * (xc - x_bar[..., None])
    raw = difference(yt, yc, alpha)
    adjusted = difference(adj_t, adj_c, alpha)
    with np.errstate(all="ignore"):
        reduction = 1.0 - adjusted.se**2 / raw.se**2
    return Cuped(theta=_f(theta), correlation=_f(corr), variance_reduction=_f(reduction), adjusted=adjusted, raw=raw)


# ---------------------------------------------------------------------------------------------------------------
# Sample-ratio mismatch


@dataclass(frozen=True)
class SampleRatio(_Plain):
    """The SRM test: ``mismatch`` is True when ``p_value`` < ``alpha`` (the split is not what was configured, and the
    experiment's comparisons should not be trusted until the cause is found)."""

    alpha: float
    counts: FloatArray
    expected_shares: FloatArray
    observed_shares: FloatArray
    chi2: FloatArray
    df: int
    p_value: FloatArray
    mismatch: npt.NDArray[np.bool_]


def srm_check(counts: npt.ArrayLike, expected_shares: npt.ArrayLike | None = None, alpha: float = 0.001) -> SampleRatio:
    """Sample-ratio mismatch: Pearson's chi-square goodness-of-fit test of the units counted per arm (last axis)
    against the configured shares (normalised to sum to 1; equal shares when None):

        E_k = N · share_k,   χ² = Σ_k (O_k - E_k)² / E_k,   p = P(χ²_{K-1} > χ²)

    An SRM is the most common sign of a broken experiment (assignment, exposure logging or bot filtering that
    differs by arm): Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments",
    KDD; Kohavi, Tang & Xu 2020, *Trustworthy Online Controlled Experiments*, ch. 21. A small ``alpha`` (0.001 by
    default) because the check runs on every experiment at every look: a mismatch is flagged, not a test of the
    treatment. For scale: a 50.5 / 49.5 split of 100,000 units gives χ² = 10, p = 0.0016 (not flagged at 0.001);
    50.6 / 49.4 gives χ² = 14.4, p = 0.00015 (flagged)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    o = _f(counts)
    k = o.shape[-1]
    if k < 2:
        raise ValueError("srm_check needs at least two arms")
    if np.any(o < 0):
        raise ValueError("counts must be non-negative")
    shares = np.full(k, 1.0 / k) if expected_shares is None else _f(expected_shares)
    if shares.shape[-1] != k:
        raise ValueError(f"{shares.shape[-1]} expected shares for {k} arms")
    if np.any(shares <= 0):
        raise ValueError("expected shares must be positive")
    shares = shares / shares.sum(axis=-1, keepdims=True)
    total = o.sum(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        expected = total * shares
        chi2 = ((o - expected) ** 2 / expected).sum(axis=-1)
        observed = o / total
    p = stats.chi2.sf(chi2, k - 1)
    return SampleRatio(
        alpha=float(alpha),
        counts=o,
        expected_shares=_f(np.broadcast_to(shares, o.shape)),
        observed_shares=_f(observed),
        chi2=_f(chi2),
        df=k - 1,
        p_value=_f(p),
        mismatch=np.asarray(p < alpha),
    )


# ---------------------------------------------------------------------------------------------------------------
# Always-valid sequential inference: the mixture SPRT


@dataclass(frozen=True)
class Sequential(_Plain):
    """An mSPRT over looks (last axis): at each look, the estimate and its variance, log Λ (the mixture likelihood
    ratio against ``theta0``), the always-valid ``p_value`` and confidence sequence [``low``, ``high``] (both
    cumulative over the looks so far), ``reject`` (p ≤ alpha) and, per experiment, ``first_rejection``: the index
    of the first look that rejects, -1 if none."""

    alpha: float
    tau: FloatArray
    theta0: float
    estimate: FloatArray
    variance: FloatArray
    log_lr: FloatArray
    p_value: FloatArray
    low: FloatArray
    high: FloatArray
    reject: npt.NDArray[np.bool_]
    first_rejection: npt.NDArray[np.int64]


def msprt_log_lr(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, tau: npt.ArrayLike, theta0: float = 0.0
) -> FloatArray:
    """log Λ, the normal-mixture likelihood ratio for an estimate θ̂ ~ N(θ, V) of H1: θ ~ N(θ0, τ²) against
    H0: θ = θ0:

        Λ = ∫ φ(θ̂; θ, V) dN(θ; θ0, τ²) / φ(θ̂; θ0, V) = √(V / (V + τ²)) · exp(τ² (θ̂ - θ0)² / (2 V (V + τ²)))

    With cumulative data, θ̂ / V is a Brownian motion with drift θ in the information time 1 / V, and Λ over the
    looks is then a nonnegative martingale under H0 with mean 1 (Robbins 1970, Ann. Math. Statist. 41:1397–1409), so
    P(Λ ever ≥ 1/α) ≤ α by Ville's inequality, however often one looks (Johari, Pekelis & Walsh 2022, "Always Valid
    Inference: Continuous Monitoring of A/B Tests", Operations Research 70:1806–1821, for two-sample
    normal data; Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B Tests", KDD). A look whose variance is not
    positive and finite has log Λ = 0 (no evidence)."""
    th, v, t2 = _f(estimate), _f(variance), _f(tau) ** 2
    with np.errstate(all="ignore"):
        ok = np.isfinite(th) & np.isfinite(v) & (v > 0)
        out = 0.5 * np.log(v / (v + t2)) + t2 * (th - theta0) ** 2 / (2.0 * v * (v + t2))
    return _f(np.where(ok, out, 0.0))


def msprt(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    *,
    tau: npt.ArrayLike,
    alpha: float = 0.05,
    theta0: float = 0.0,
) -> Sequential:
    """The mSPRT over a sequence of looks (last axis), each look's ``estimate`` and ``variance`` computed on all the
    data up to it (cumulative), for any number of looks (one included). ``tau``: the mixing distribution's standard
    deviation, in the estimate's units, a scalar or one per experiment (the batch shape); ``tau_for_horizon`` gives
    a default. It must be fixed before the data are seen.

    Always-valid p-value (Johari, Pekelis & Walsh 2022):

        p_n = min(1, min_{m ≤ n} 1 / Λ_m)

    Always-valid confidence sequence: the θ0 that no look so far rejects,

        CS_n = ∩_{m ≤ n} { θ0 : Λ_m(θ0) < 1/α } = ∩_{m ≤ n} [θ̂_m - h_m, θ̂_m + h_m],
        h² = V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²) / V))

    so P(θ ∈ CS_n for every n) ≥ 1 - α, and p_n ≤ α exactly when θ0 ∉ CS_n. Stopping at any look, for any reason,
    keeps both valid. An intersection that becomes empty (probability ≤ α if the model holds) is reported as NaN.
    Any asymptotically normal estimate may be monitored (a difference of means, a CUPED-adjusted difference, a
    delta-method relative difference); validity is then asymptotic, as for the plug-in variances in Johari et al."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    th, v = np.broadcast_arrays(_f(estimate), _f(variance))
    tau_ = _f(tau)
    if np.any(~(tau_ > 0)):
        raise ValueError("tau must be positive")
    t_look = tau_[..., None] if tau_.ndim else tau_
    log_lr = msprt_log_lr(th, v, t_look, theta0)
    p = np.minimum(1.0, np.exp(-np.maximum.accumulate(np.maximum(log_lr, 0.0), axis=-1)))
    t2 = t_look**2
    with np.errstate(all="ignore"):
        h = np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log((v + t2) / v)))
        ok = np.isfinite(th) & np.isfinite(h)
        lo = np.where(ok, th - h, -np.inf)
        hi = np.where(ok, th + h, np.inf)
    lo = np.maximum.accumulate(lo, axis=-1)
    hi = np.minimum.accumulate(hi, axis=-1)
    empty = lo > hi
    lo = np.where(empty, np.nan, lo)
    hi = np.where(empty, np.nan, hi)
    reject = p <= alpha
    first = np.where(reject.any(axis=-1), reject.argmax(axis=-1), -1).astype(np.int64)
    return Sequential(
        alpha=float(alpha),
        tau=_f(tau_),
        theta0=float(theta0),
        estimate=_f(th),
        variance=_f(v),
        log_lr=log_lr,
        p_value=_f(p),
        low=_f(lo),
        high=_f(hi),
        reject=np.asarray(reject),
        first_rejection=np.asarray(first),
    )


def msprt_difference(
    treat: Moments, ctrl: Moments, *, tau: npt.ArrayLike, alpha: float = 0.05, theta0: float = 0.0
) -> Sequential:
    """The mSPRT for the difference of means, treatment minus control, with the arms' cumulative ``Moments`` at each
    look on the last axis (``cumulative_moments`` builds them from per-period sums): θ̂ = ȳ_t - ȳ_c and the plug-in
    V = s²_t / n_t + s²_c / n_c (Johari, Pekelis & Walsh 2022: the two-stream normal case, with variances
    estimated)."""
    return msprt(treat.mean - ctrl.mean, treat.var_mean + ctrl.var_mean, tau=tau, alpha=alpha, theta0=theta0)


def cumulative_moments(n: npt.ArrayLike, total: npt.ArrayLike, total_sq: npt.ArrayLike) -> Moments:
    """Cumulative ``Moments`` at each look from per-period counts, sums and sums of squares of new units' outcomes
    (periods on the last axis): look k covers periods 0..k."""
    return Moments.from_sums(np.cumsum(_f(n), axis=-1), np.cumsum(_f(total), axis=-1), np.cumsum(_f(total_sq), axis=-1))


def tau_for_horizon(variance_at_horizon: npt.ArrayLike, alpha: float = 0.05) -> FloatArray:
    """A mixing standard deviation τ for which the mSPRT's boundary is tightest at a planned last look.

    Derived here (not a published default): with r = τ² / V, the test rejects at a look when
    z² = θ̂² / V ≥ (1 + 1/r) (c + log(1 + r)), c = 2 log(1/α). Minimising the right side over r gives
    r = c + log(1 + r) (solved by fixed-point iteration; r ≈ 8.21 for α = 0.05, where the threshold is |z| ≥ 3.03
    against 1.96 for a single fixed-horizon test), so τ = √(r · V_M), V_M the estimate's variance expected at the
    planned end (e.g. σ² (1/n_t + 1/n_c) with the planned arm sizes). Earlier looks need a larger z, later ones
    only slightly larger (the boundary grows like √log). Choosing τ from the data being tested breaks validity:
    fix V_M from the plan or from pre-period data. Johari et al. (2017, KDD) instead fit τ to a prior of effect
    sizes from past experiments; Howard et al. 2021 ("Time-uniform, nonparametric, nonasymptotic confidence
    sequences", Ann. Statist. 49:1055–1080) discuss the same tuning of a normal-mixture boundary."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    c = 2.0 * math.log(1.0 / alpha)
    r = c
    for _ in range(100):
        r_next = c + math.log1p(r)
        if abs(r_next - r) < 1e-12:
            break
        r = r_next
    return _f(np.sqrt(r * _f(variance_at_horizon)))


# ---------------------------------------------------------------------------------------------------------------
# Guardrails


def guardrail_verdict(
    low: float, high: float, max_increase: float | None = None, max_decrease: float | None = None
) -> str:
    """A guardrail's verdict from an interval [low, high] on a metric's **relative** difference (treatment / control
    - 1; e.g. ``Difference.rel_low`` / ``rel_high``, or an always-valid confidence sequence's bounds).

    Limits are non-negative fractions: ``max_increase=0.05`` is "must not rise by more than 5%" (the interval is
    compared with +0.05), ``max_decrease=0.05`` is "must not fall by more than 5%" (compared with -0.05).

    - ``"breach"``: the whole interval lies beyond a limit (low > max_increase, or high < -max_decrease);
    - ``"pass"``: the whole interval lies within every limit given (high ≤ max_increase and low ≥ -max_decrease);
    - ``"inconclusive"``: otherwise (the interval straddles a limit: more data needed), or when a bound is NaN.

    A breach of either limit wins over a pass of the other. This is the interval form of a non-inferiority test
    (guardrail metrics: Kohavi, Tang & Xu 2020): "pass" at 1 - α rejects "the metric moved beyond the
    limit" at one-sided level α/2."""
    if max_increase is None and max_decrease is None:
        raise ValueError("give max_increase, max_decrease or both")
    for name, limit in (("max_increase", max_increase), ("max_decrease", max_decrease)):
        if limit is not None and not (math.isfinite(limit) and limit >= 0):
            raise ValueError(f"{name} must be a non-negative fraction (0.05 = 5%), got {limit}")
    lo, hi = float(low), float(high)
    if math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE
    if lo > hi:
        raise ValueError(f"low {lo} is above high {hi}")
    if (max_increase is not None and lo > max_increase) or (max_decrease is not None and hi < -max_decrease):
        return BREACH
    if (max_increase is None or hi <= max_increase) and (max_decrease is None or lo >= -max_decrease):
        return PASS
    return INCONCLUSIVE
