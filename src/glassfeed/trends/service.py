"""``TrendService``: trends served from a ``FeedService``'s serving state, at its clock (wall, or the data's).

Each scope (every account, or one community) is computed at most once per ``[trends] refresh_s`` wall seconds and
the answer is kept: a request reads the kept list. The term index (``trends.index.TermIndex``) is brought up to
date under the feed's lock, so a state swapped by a reload is indexed again from the start."""

from __future__ import annotations

import time
from typing import Any

from glassfeed.feed.service import FeedError, FeedService
from glassfeed.settings import TrendSettings
from glassfeed.trends.compute import TrendList, compute_trends
from glassfeed.trends.index import TermIndex
from glassfeed.trends.policy import TrendPolicy, describe, load_trend_policy


class TrendService:
    """Trends for the API and the web page (see the module docstring)."""

    def __init__(
        self,
        feed: FeedService,
        settings: TrendSettings | None = None,
        policy: TrendPolicy | None = None,
        max_community: int | None = None,
    ) -> None:
        self.feed = feed
        self.settings = settings or feed.settings.trends
        self.policy = policy or load_trend_policy(self.settings.policy)
        self.max_community = feed.settings.ingest.max_community if max_community is None else max_community
        self.index = TermIndex()
        self._kept: dict[int | None, tuple[float, TrendList]] = {}

    def check(self, community: int | None, limit: int | None) -> int:
        """The request's limit (the policy's default when None); a ``FeedError`` (422) naming a bad field."""
        pub = self.policy.publish
        if limit is None:
            limit = pub.default_limit
        if type(limit) is not int or not 1 <= limit <= pub.max_limit:
            raise FeedError("limit", f"must be an integer in [1, {pub.max_limit}]", 422)
        if community is not None and (type(community) is not int or not 0 <= community < self.max_community):
            raise FeedError("community", f"must be an integer in [0, {self.max_community})", 422)
        return limit

    def list(self, community: int | None = None) -> TrendList:
        """The scope's trends, recomputed when the kept answer is older than ``refresh_s``."""
        wall = time.monotonic()
        kept = self._kept.get(community)
        if kept is not None and wall - kept[0] < self.settings.refresh_s:
            return kept[1]
        feed = self.feed
        with feed.lock:
            result = compute_trends(feed.state, self.index, self.policy, feed.now(), community)
        self._kept[community] = (wall, result)
        return result

    def describe(self) -> str:
        """The rules' plain-language statement."""
        return describe(self.policy)

    def trends(self, community: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """``GET /v1/trends``'s answer: the scope's best ``limit`` trends (and held-back terms), each explained."""
        n = self.check(community, limit)
        return self.list(community).as_dict(n)


__all__ = ["TrendService"]
