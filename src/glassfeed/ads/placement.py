"""Where ads go on a page: the feed policy's ad load (``feed.policy.AdLoad``) turned into places.

A page of ``n`` posts gets at most ``k`` ads, the largest ``k`` with ``k / (n + k) <= max_share``; the first ad is
at place ``first_position`` or lower, and every two ads have at least ``min_gap`` posts between them (so never two
ads in a row); every ad has a post below it."""

from __future__ import annotations

import math

from glassfeed.feed.policy import AdLoad


def max_ads(posts: int, load: AdLoad) -> int:
    """The most ads a page of ``posts`` posts may carry under ``load.max_share`` (ads count among its places)."""
    if posts <= 0 or load.max_share <= 0:
        return 0
    return max(0, math.floor(load.max_share * posts / (1.0 - load.max_share) + 1e-9))


def ad_places(posts: int, load: AdLoad, available: int) -> list[int]:
    """The places (0-based, on the page with the ads in it) of up to ``available`` ads among ``posts`` posts:
    the ``j``-th ad has ``first_position - 1 + j * min_gap`` posts above it and at least one below it."""
    k = min(max_ads(posts, load), max(available, 0))
    places = []
    for j in range(k):
        above = load.first_position - 1 + j * load.min_gap
        if above >= posts:
            break
        places.append(above + j)
    return places


__all__ = ["ad_places", "max_ads"]
