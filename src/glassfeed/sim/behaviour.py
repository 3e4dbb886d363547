"""The explicit user behaviour model shared by ``glassfeed generate`` and the simulator.

Given feature arrays for a batch of (user, post, position) it returns the probability of each
engagement head (revealed preference) and, separately, the stated satisfaction and regret a user
would report about the item (what they say was worth their time). The two disagree on purpose:
divisive posts pull clicks and replies (outrage) but lower stated satisfaction, as Milli et al.
(2025) measured. Everything is vectorised numpy over arrays of any (broadcastable) shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, ndtr


@dataclass
class BehaviourParams:
    """Every coefficient of the behaviour model; logits are linear in the item features."""

    # position bias: probability of examining position k (0-based) is attention ** k
    attention: float = 0.93
    # with it, ``population.respond`` applies that cascade to what is logged: a scanned (logged) item at slot k is
    # read with probability attention ** k, so engagement per logged impression falls with the slot whatever the
    # post (the old ranking's position effect that position debiasing removes). Off: the generated histories and
    # simulator runs documented elsewhere keep their numbers (scan fatigue is then the only in-page position effect).
    position_effect: bool = False
    # click
    click_bias: float = -4.6
    click_match: float = 2.2
    click_affinity: float = 0.9
    click_quality: float = 0.6
    click_divisive: float = 1.6  # outrage pull: divisiveness raises clicks whatever the side
    # like
    like_bias: float = -5.4
    like_match: float = 2.4
    like_affinity: float = 1.2
    like_quality: float = 1.6
    like_divisive_ingroup: float = 1.2  # in-group cheers divisive posts...
    like_divisive_outgroup: float = -2.0  # ...the out-group does not
    # repost
    repost_bias: float = -6.8
    repost_match: float = 2.0
    repost_affinity: float = 1.0
    repost_quality: float = 1.4
    repost_divisive_ingroup: float = 1.8
    # reply
    reply_bias: float = -7.0
    reply_match: float = 1.2
    reply_affinity: float = 1.2
    reply_divisive: float = 2.6  # both sides reply to outrage
    # negative feedback (see less / not interested, report)
    see_less_bias: float = -5.0
    see_less_match: float = -2.5
    see_less_quality: float = -1.0
    see_less_divisive_outgroup: float = 2.5
    report_bias: float = -8.5
    report_quality: float = -1.5
    report_divisive_outgroup: float = 3.5
    not_interested_share: float = 0.3  # share of see-less actions sent as NOT_INTERESTED
    # fatigue lowers every positive logit and raises see-less
    fatigue_penalty: float = 1.5
    fatigue_see_less: float = 1.0
    # dwell after a click: lognormal seconds, log-mean linear in features
    dwell_log_mean: float = np.log(12.0)
    dwell_quality: float = 0.9
    dwell_match: float = 0.6
    dwell_divisive: float = 0.3
    dwell_sigma: float = 0.8
    dwell_threshold_s: float = 10.0  # the dwell head is P(dwell >= threshold)
    scan_s: float = 2.0  # median seconds to scan one item in the feed
    # stated satisfaction ("was this worth your time?") and regret
    sat_bias: float = -1.0
    sat_quality: float = 2.6
    sat_match: float = 1.8
    sat_divisive: float = -2.4
    sat_fatigue: float = -0.8
    regret_bias: float = -1.5
    regret_quality: float = -2.0
    regret_match: float = -1.0
    regret_divisive: float = 2.8
    regret_fatigue: float = 0.8
    # session: budget (seconds) scales with (1 - fatigue); quit hazard per scanned item
    quit_hazard: float = 0.05
    quit_fatigue: float = 0.15
    fatigue_items: float = 60.0  # items scanned that take fatigue from 0 to 1 - 1/e
    fatigue_divisive: float = 0.02  # extra fatigue per unit of divisiveness consumed
    fatigue_recovery_s: float = 8 * 3600.0
    # author reward hook: posting rate multiplier 1 + gain * log1p(reward / scale), capped
    reward_gain: float = 0.5
    reward_scale: float = 5.0
    reward_max_multiplier: float = 4.0
    reward_half_life_s: float = 3 * 86400.0


@dataclass
class EngagementProbs:
    """Per-head probabilities (same shape as the inputs) plus the dwell distribution after a click."""

    click: np.ndarray
    like: np.ndarray
    repost: np.ndarray
    reply: np.ndarray
    dwell: np.ndarray  # P(click and dwell >= threshold)
    see_less: np.ndarray
    report: np.ndarray
    dwell_log_mu: np.ndarray  # log-seconds location of the dwell lognormal
    dwell_sigma: float

    def expected_dwell_s(self) -> np.ndarray:
        """Mean dwell seconds given a click."""
        return np.exp(self.dwell_log_mu + 0.5 * self.dwell_sigma**2)


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def examine_prob(position: ArrayLike, params: BehaviourParams) -> np.ndarray:
    """Cascade position bias: probability that a scanning user reaches ``position`` (0-based)."""
    pos = np.maximum(_f(position), 0.0)
    return params.attention**pos


def engagement_probs(
    match: ArrayLike,
    quality: ArrayLike,
    divisiveness: ArrayLike,
    affinity: ArrayLike = 0.0,
    alignment: ArrayLike = 0.0,
    fatigue: ArrayLike = 0.0,
    position: ArrayLike | None = None,
    params: BehaviourParams | None = None,
) -> EngagementProbs:
    """Revealed-preference head probabilities for a batch of items.

    ``match`` in [0, 1] is the user's interest in the post's topic relative to their top topic,
    ``affinity`` in [0, 1] their tie to the author, ``alignment`` in [-1, 1] the product of user and
    author leanings (> 0 in-group, < 0 out-group), ``fatigue`` in [0, 1]. With ``position`` the
    probabilities include the chance of examining that slot; without, they are conditional on it.
    """
    p = params or BehaviourParams()
    m, q, d = _f(match), _f(quality), _f(divisiveness)
    a, al, fat = _f(affinity), _f(alignment), _f(fatigue)
    ingroup, outgroup = np.maximum(al, 0.0), np.maximum(-al, 0.0)
    tired = p.fatigue_penalty * fat
    click = expit(
        p.click_bias + p.click_match * m + p.click_affinity * a + p.click_quality * q + p.click_divisive * d - tired
    )
    like = expit(
        p.like_bias
        + p.like_match * m
        + p.like_affinity * a
        + p.like_quality * q
        + d * (p.like_divisive_ingroup * ingroup + p.like_divisive_outgroup * outgroup)
        - tired
    )
    repost = expit(
        p.repost_bias
        + p.repost_match * m
        + p.repost_affinity * a
        + p.repost_quality * q
        + p.repost_divisive_ingroup * d * ingroup
        - tired
    )
    reply = expit(p.reply_bias + p.reply_match * m + p.reply_affinity * a + p.reply_divisive * d - tired)
    see_less = expit(
        p.see_less_bias
        + p.see_less_match * m
        + p.see_less_quality * q
        + p.see_less_divisive_outgroup * d * outgroup
        + p.fatigue_see_less * fat
    )
    report = expit(p.report_bias + p.report_quality * q + p.report_divisive_outgroup * d * outgroup)
    mu = p.dwell_log_mean + p.dwell_quality * (q - 0.5) + p.dwell_match * (m - 0.5) + p.dwell_divisive * d
    long_dwell = click * (1.0 - ndtr((np.log(p.dwell_threshold_s) - mu) / p.dwell_sigma))
    if position is not None:
        ex = examine_prob(position, p)
        click, like, repost, reply, long_dwell, see_less, report = (
            x * ex for x in (click, like, repost, reply, long_dwell, see_less, report)
        )
    return EngagementProbs(
        click=click,
        like=like,
        repost=repost,
        reply=reply,
        dwell=long_dwell,
        see_less=see_less,
        report=report,
        dwell_log_mu=mu,
        dwell_sigma=p.dwell_sigma,
    )


def stated_satisfaction(
    match: ArrayLike,
    quality: ArrayLike,
    divisiveness: ArrayLike,
    fatigue: ArrayLike = 0.0,
    params: BehaviourParams | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """What a user *says* about a consumed item: (P(worth my time), P(regret seeing it))."""
    p = params or BehaviourParams()
    m, q, d, fat = _f(match), _f(quality), _f(divisiveness), _f(fatigue)
    sat = expit(p.sat_bias + p.sat_quality * q + p.sat_match * m + p.sat_divisive * d + p.sat_fatigue * fat)
    regret = expit(
        p.regret_bias + p.regret_quality * q + p.regret_match * m + p.regret_divisive * d + p.regret_fatigue * fat
    )
    return sat, regret


def sample_dwell_s(probs: EngagementProbs, rng: np.random.Generator) -> np.ndarray:
    """Draw dwell seconds (given a click) from each item's lognormal."""
    z = rng.standard_normal(np.shape(probs.dwell_log_mu))
    return np.exp(probs.dwell_log_mu + probs.dwell_sigma * z)


def posting_multiplier(reward: ArrayLike, params: BehaviourParams | None = None) -> np.ndarray:
    """Authors post more when rewarded: rate multiplier from recent (decayed) engagement received."""
    p = params or BehaviourParams()
    mult = 1.0 + p.reward_gain * np.log1p(np.maximum(_f(reward), 0.0) / p.reward_scale)
    return np.minimum(mult, p.reward_max_multiplier)


def fatigue_after(
    fatigue: ArrayLike, n_seen: ArrayLike, divisive_seen: ArrayLike, params: BehaviourParams | None = None
) -> np.ndarray:
    """Fatigue after scanning ``n_seen`` items carrying ``divisive_seen`` total divisiveness."""
    p = params or BehaviourParams()
    load = _f(n_seen) / p.fatigue_items + p.fatigue_divisive * _f(divisive_seen)
    return 1.0 - (1.0 - _f(fatigue)) * np.exp(-load)


def fatigue_recovered(fatigue: ArrayLike, elapsed_s: ArrayLike, params: BehaviourParams | None = None) -> np.ndarray:
    """Fatigue decays exponentially while the user is away."""
    p = params or BehaviourParams()
    return _f(fatigue) * np.exp(-np.maximum(_f(elapsed_s), 0.0) / p.fatigue_recovery_s)
