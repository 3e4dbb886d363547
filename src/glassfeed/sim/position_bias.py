"""Position debiasing, measured where the truth is known: the heads' error in each (user, post)'s position-free
appeal.

The behaviour model (``sim/behaviour.py``) knows, for any (user, post), the probability of each engagement
*given that the user reads the slot*: its position-free appeal. With ``BehaviourParams.position_effect`` the
logged impressions carry the cascade's position effect (a scanned item at slot k is read with probability
``attention ** k``), so heads trained on raw logs learn the old ranking's position effect. Heads trained with the
logged slot as a feature and asked at slot 0 (``feed/features.py``: serving fills ``position`` with 0) should
estimate the appeal at the top slot instead. ``true_appeal`` gives that truth for a rested user (fatigue 0) at the
top slot; ``appeal_error`` compares a model's probabilities with it, overall and by the slot an item was logged at.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from glassfeed.domain import EventKind
from glassfeed.sim.behaviour import BehaviourParams, engagement_probs
from glassfeed.sim.generate import SyntheticNetwork
from glassfeed.sim.population import author_affinity

#: Logged slots grouped for the by-slot breakdown: [0, 5), [5, 10), [10, 15), [15, inf).
SLOT_EDGES: tuple[int, ...] = (0, 5, 10, 15)


@dataclass
class AppealError:
    """How far predicted probabilities ``pred`` are from the true position-free appeal ``true`` (same pairs).

    ``mae``: mean |pred - true|; ``level``: log(mean pred / mean true), the bias of the overall level (0 = calibrated
    in the large; < 0 underestimates, e.g. a model that learned the average slot's reading probability);
    ``log_ratio``: mean log(pred / true), which also grows with the spread of per-pair errors (a model that cannot
    tell pairs apart overestimates the unappealing ones); ``spearman``: rank correlation (does the model order the
    pairs as their appeal does, whatever its level); ``by_slot``: the same per group of logged slot."""

    n: int
    mae: float
    level: float
    log_ratio: float
    spearman: float
    by_slot: dict[str, AppealError] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "mae": self.mae,
            "level": self.level,
            "log_ratio": self.log_ratio,
            "spearman": self.spearman,
            "by_slot": {k: v.to_dict() for k, v in self.by_slot.items()},
        }


def _error(pred: np.ndarray, true: np.ndarray, floor: float) -> AppealError:
    n = len(pred)
    if n == 0:
        return AppealError(0, float("nan"), float("nan"), float("nan"), float("nan"))
    lr = np.log(np.maximum(pred, floor)) - np.log(np.maximum(true, floor))
    level = float(np.log(max(pred.mean(), floor)) - np.log(max(true.mean(), floor)))
    rho = float(spearmanr(pred, true).statistic) if n > 2 and np.ptp(pred) > 0 and np.ptp(true) > 0 else float("nan")
    return AppealError(n, float(np.mean(np.abs(pred - true))), level, float(np.mean(lr)), rho)


def appeal_error(
    pred: np.ndarray,
    true: np.ndarray,
    slot: np.ndarray | None = None,
    edges: tuple[int, ...] = SLOT_EDGES,
    floor: float = 1e-6,
) -> AppealError:
    """Error of ``pred`` against the true appeal ``true``, overall and (with ``slot``, each pair's logged slot) per
    group of slots ``[edges[i], edges[i + 1])`` (the last group open-ended). Probabilities are floored at ``floor``
    before the log ratio."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    out = _error(pred, true, floor)
    if slot is not None:
        s = np.asarray(slot)
        bounds = [*edges, np.inf]
        for lo, hi in itertools.pairwise(bounds):
            m = (s >= lo) & (s < hi)
            name = f"{lo}+" if hi == np.inf else f"{lo}-{int(hi) - 1}"
            out.by_slot[name] = _error(pred[m], true[m], floor)
    return out


def following_at(net: SyntheticNetwork, t: float) -> np.ndarray:
    """Sorted keys ``src * n_users + dst`` of the follows in place at ``t`` (initial graph + FOLLOW events before)."""
    n = net.n_users
    ev = net.events
    fol = (ev.kind == int(EventKind.FOLLOW)) & (ev.ts < t)
    src = np.r_[net.follow_src[net.follow_created < t], ev.user[fol]].astype(np.int64)
    dst = np.r_[net.follow_dst[net.follow_created < t], ev.target_user[fol]].astype(np.int64)
    return np.unique(src * n + dst)


def true_appeal(
    net: SyntheticNetwork,
    users: np.ndarray,
    posts: np.ndarray,
    follows: np.ndarray,
    params: BehaviourParams | None = None,
) -> dict[str, np.ndarray]:
    """Per head, the probability that ``users[i]`` engages with ``posts[i]`` (network indexes) once they read it:
    rested (fatigue 0), at the top slot, with the tie to the author given by ``follows`` (``following_at``)."""
    u, p = np.asarray(users, np.int64), np.asarray(posts, np.int64)
    authors = net.post_author[p].astype(np.int64)
    key = u * net.n_users + authors
    at = np.minimum(np.searchsorted(follows, key), max(len(follows) - 1, 0))
    following = (follows[at] == key) if len(follows) else np.zeros(len(u), bool)
    interests = net.user_interests
    topic = net.post_topic[p].astype(np.int64)
    match = interests[u, topic] / interests[u].max(1)
    aff = author_affinity(_Communities(net.user_community), u, authors, following)  # type: ignore[arg-type]
    align = net.user_leaning[u].astype(np.float64) * net.user_leaning[authors]
    pr = engagement_probs(
        match,
        net.post_quality[p],
        net.post_divisiveness[p],
        aff,
        align,
        0.0,
        None,
        params,
    )
    return {"like": pr.like, "click": pr.click, "repost": pr.repost, "reply": pr.reply, "dwell": pr.dwell}


@dataclass
class _Communities:
    """What ``population.author_affinity`` reads of a population: the community of each user."""

    community: np.ndarray


def slot_rates(net: SyntheticNetwork, kind: EventKind, until: float, max_slot: int) -> np.ndarray:
    """Engagements of ``kind`` per logged impression at each slot ``0 .. max_slot - 1`` before ``until``: the
    position effect the logs carry (what a model trained on them sees)."""
    ev = net.events
    before = (ev.ts < until) & (ev.position >= 0) & (ev.position < max_slot)
    imp = np.bincount(ev.position[before & (ev.kind == int(EventKind.IMPRESSION))], minlength=max_slot)
    eng = np.bincount(ev.position[before & (ev.kind == int(kind))], minlength=max_slot)
    return eng / np.maximum(imp, 1)
