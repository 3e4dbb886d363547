"""Posts already shown to each person (logged impressions), kept compactly and only while they could be served.

A Python ``set`` costs about 60 bytes per (person, post) pair, and a person's set grew with every impression for
the life of the process. Here each person has a sorted ``int32`` array (4 bytes per pair) plus a small set of the
newest additions, merged into the array when it reaches ``merge_at`` posts or when the person's seen posts are
read. At each merge, posts created more than ``retention_s`` before the newest event are dropped: no policy
serves a post that old (``FeedService`` refuses a policy whose ``max_age_hours`` exceeds the retention), so
remembering it only costs memory. Memory is then bounded by the posts of the retention window, not by time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

_NONE = np.zeros(0, np.int32)


class SeenPosts:
    """Per person: the posts shown to them that are still young enough to be served."""

    def __init__(self, merge_at: int, retention_s: float, created: Callable[[np.ndarray], np.ndarray]) -> None:
        self.merge_at = merge_at
        self.retention_s = retention_s
        self._created = created  # post idx -> creation time (the serving state's posts)
        self._arrays: dict[int, np.ndarray] = {}
        self._pending: dict[int, set[int]] = {}
        self.newest_ts = 0.0

    def add(self, user: int, posts: Iterable[int], now: float) -> None:
        """Remember that ``posts`` were shown to ``user`` (``now``: the time of the newest event)."""
        self.newest_ts = max(self.newest_ts, now)
        pending = self._pending.setdefault(user, set())
        pending.update(posts)
        if len(pending) >= self.merge_at:
            self._merge(user)

    def get(self, user: int) -> np.ndarray:
        """The posts shown to ``user`` within the retention window, sorted (a read-only view)."""
        if user in self._pending:
            self._merge(user)
        return self._arrays.get(user, _NONE)

    def count(self, user: int) -> int:
        return len(self.get(user))

    def forget(self, user: int) -> None:
        self._arrays.pop(user, None)
        self._pending.pop(user, None)

    def compact(self) -> None:
        """Merge every person's newest posts into their array (after a rebuild from the store, where each person
        would otherwise keep up to ``merge_at - 1`` posts in a set until their next read)."""
        for user in list(self._pending):
            self._merge(user)

    def nbytes(self) -> int:
        """Bytes held by the arrays (the pending sets excluded): for memory measurements."""
        return sum(a.nbytes for a in self._arrays.values())

    def _merge(self, user: int) -> None:
        new = np.fromiter(self._pending.pop(user, ()), np.int32)
        merged = np.union1d(self._arrays.get(user, _NONE), new).astype(np.int32, copy=False)
        if len(merged):
            merged = merged[self._created(merged) >= self.newest_ts - self.retention_s]
        if len(merged):
            merged.setflags(write=False)
            self._arrays[user] = merged
        else:
            self._arrays.pop(user, None)


__all__ = ["SeenPosts"]
