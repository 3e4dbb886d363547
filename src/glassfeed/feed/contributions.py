"""How much each engagement head typically moves served scores, measured on recent traffic, for the DSA statement.

A head's weight alone says little about its influence: report's weight is -369, but P(report) is tiny, so it
moves a score by a few hundredths while dwell (weight 11) moves it by several points. ``FeedService`` keeps each
served page's ``PageTotals`` (one small vector per page, beside the page's explanation); ``measure`` sums them
into ``TypicalContributions``, the mean |weight x P(head)| per served post, which ``policy.describe`` orders by.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from glassfeed.feed.policy import HEADS, TypicalContributions


@dataclass(frozen=True, slots=True)
class PageTotals:
    """One served page's sum of |weight x P(head)| over its items, per head (in ``HEADS`` order)."""

    abs_sum: np.ndarray
    n_items: int
    served_at: float  # wall-clock time the page was served


def page_totals(probs: np.ndarray, weights: np.ndarray, served_at: float) -> PageTotals:
    """``PageTotals`` of a page whose items had head probabilities ``probs`` (n, len(HEADS)) and were scored
    with ``weights`` (the policy's, with the person's own choices)."""
    return PageTotals(np.abs(probs * weights).sum(axis=0), len(probs), served_at)


def measure(pages: Iterable[PageTotals], scope: str) -> TypicalContributions | None:
    """Each head's mean |weight x P(head)| per served post over ``pages``, with a sentence saying how it was
    measured (``scope`` says which pages these are); None when the pages hold no post."""
    pages = [p for p in pages if p.n_items]
    if not pages:
        return None
    n_items = sum(p.n_items for p in pages)
    mean = np.sum([p.abs_sum for p in pages], axis=0) / n_items
    first, last = utc_minute(min(p.served_at for p in pages)), utc_minute(max(p.served_at for p in pages))
    when = f"at {first}" if first == last else f"between {first} and {last}"
    how = (
        f"measured as the mean of |weight × predicted chance| over the {_n(n_items, 'post')} on the "
        f"{_n(len(pages), 'page')} ranked with it {when} ({scope}), each with the weights it was ranked with."
    )
    return TypicalContributions({h: float(v) for h, v in zip(HEADS, mean.tolist())}, how)


def _n(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def utc_minute(ts: float) -> str:
    """A time as ``2026-01-30 14:05 UTC``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


__all__ = ["PageTotals", "page_totals", "measure", "utc_minute"]
