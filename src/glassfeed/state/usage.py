"""Time in the app: the pages each person was served recently, for the daily usage budget and its stopping cue.

A served page is logged as impressions sharing one time, so each distinct impression time of a person is a page.
Time in the app over a period = the gaps between consecutive pages shorter than ``session_gap_s`` (longer ones
start a new session), plus ``page_s`` for the last page of each session. Pages older than ``keep_s`` are
forgotten: the budget is per day, so two days are kept.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np


class Usage:
    """Per person, the times of their recent pages (sorted)."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._pages: dict[int, list[float]] = {}

    def apply(self, users: np.ndarray, ts: np.ndarray) -> None:
        """Fold impressions in (``users``, ``ts``: one entry per impression)."""
        if not len(users):
            return
        recent = ts >= ts.max() - self.keep_s  # a long replay (a rebuild) keeps only what the window holds
        users, ts = users[recent], ts[recent]
        pairs = np.unique(np.stack([users.astype(np.float64), ts.astype(np.float64)], axis=1), axis=0)
        for u, t in pairs.tolist():
            pages = self._pages.setdefault(int(u), [])
            if not pages or t > pages[-1]:
                pages.append(t)
            elif t not in pages:
                pages.insert(bisect_left(pages, t), t)
            if pages[0] < t - self.keep_s:
                del pages[: bisect_left(pages, t - self.keep_s)]

    def seconds(self, user: int, since: float, until: float, session_gap_s: float, page_s: float) -> float:
        """Time in the app between ``since`` and ``until`` (see the module docstring)."""
        pages = self._pages.get(user, [])
        at = [t for t in pages[bisect_left(pages, since) :] if t <= until]
        if not at:
            return 0.0
        gaps = np.diff(np.asarray(at))
        within = gaps[gaps < session_gap_s]
        sessions = 1 + int((gaps >= session_gap_s).sum())
        return float(within.sum()) + sessions * page_s

    def forget_user(self, u: int) -> None:
        self._pages.pop(u, None)
