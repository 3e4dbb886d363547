"""Automated rules: the policy's conditions over per-post facts, evaluated for many posts at once.

A rule fires on a post when every one of its conditions holds; a condition on a fact the post lacks (a classifier
score not computed, NaN) does not hold. ``fired`` returns the whole (posts x rules) matrix, so the lever
re-evaluates every post a change touched in one call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from glassfeed.moderation.policy import Condition, ModerationPolicy

_CMP: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass
class PostFacts:
    """What rules can read about ``posts`` (one entry per post; NaN: unknown)."""

    posts: np.ndarray
    reports: np.ndarray  # distinct people who reported the post
    report_rate: np.ndarray  # reports per impression
    account_age_days: np.ndarray  # the author's
    strikes: np.ndarray  # the author's strikes in the policy's window
    labels: Sequence[Sequence[str]]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # classifier name -> score

    def column(self, name: str) -> np.ndarray:
        if name.startswith("score."):
            got = self.scores.get(name[len("score.") :])
            return got if got is not None else np.full(len(self.posts), np.nan)
        return np.asarray(getattr(self, name), np.float64)


def holds(cond: Condition, facts: PostFacts) -> np.ndarray:
    """Where ``cond`` holds (False where the fact is unknown)."""
    if cond.field == "label":
        return np.array([cond.value in lbs for lbs in facts.labels], bool)
    col = facts.column(cond.field)
    with np.errstate(invalid="ignore"):
        return np.asarray(_CMP[cond.op](col, float(cond.value)), bool) & ~np.isnan(col)


def fired(policy: ModerationPolicy, facts: PostFacts) -> np.ndarray:
    """(len(posts), len(policy.rules)) bool: which rules fire on which post."""
    out = np.ones((len(facts.posts), len(policy.rules)), bool)
    for j, rule in enumerate(policy.rules):
        for cond in rule.when:
            out[:, j] &= holds(cond, facts)
    return out
