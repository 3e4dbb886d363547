"""Feed sessions: what each paging session was served, so later pages of it never repeat a post.

A page's request id is ``"<policy>:<session>.<page>"``: the policy tag lets audits split logs by policy, the
session groups the pages one cursor walks through. ``Sessions`` keeps the posts served per session (from the
pages ``FeedService`` ranks and from impressions logged with a request id, e.g. Bluesky's "seen" interactions)
and forgets sessions idle for longer than ``serving.session_ttl_s``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from glassfeed.domain import EventBatch, EventKind

#: Past this many open sessions, recording a new one first drops the expired ones.
MAX_OPEN_BEFORE_EXPIRY = 10_000
_IMPRESSION = int(EventKind.IMPRESSION)


class RequestId(NamedTuple):
    policy: str
    session: str
    page: int


def format_request_id(policy: str, session: str, page: int) -> str:
    return f"{policy}:{session}.{page}"


def parse_request_id(request_id: str) -> RequestId:
    """The parts of ``"<policy>:<session>.<page>"``; a foreign id (no policy tag or page) keeps what it has: the
    session is the text between the last ``:`` before the first ``.`` and that ``.``."""
    head, _, page = request_id.partition(".")
    policy, _, session = head.rpartition(":")
    return RequestId(policy, session, int(page) if page.isdigit() else 0)


class Sessions:
    """Served posts per session id, expired ``ttl_s`` seconds after the session started."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._open: dict[str, tuple[float, set[int]]] = {}

    def served(self, session: str) -> set[int]:
        """Posts served so far in ``session`` (empty for an unknown or expired one); a copy."""
        entry = self._open.get(session)
        return set(entry[1]) if entry else set()

    def add(self, session: str, posts: Iterable[int], ts: float) -> None:
        """Record ``posts`` as served in ``session`` (started at ``ts`` when new)."""
        entry = self._open.get(session)
        if entry is None:
            if len(self._open) > MAX_OPEN_BEFORE_EXPIRY:
                self.expire(ts)
            entry = (ts, set())
            self._open[session] = entry
        entry[1].update(posts)

    def record(self, batch: EventBatch) -> None:
        """Record the batch's impressions that carry a request id (an ``Ingestor`` listener)."""
        if batch.request_id is None:
            return
        imp = np.flatnonzero((batch.kind == _IMPRESSION) & (batch.post > 0))
        for i in imp.tolist():
            rid = batch.request_id[i]
            if rid:
                self.add(parse_request_id(str(rid)).session, (int(batch.post[i]),), float(batch.ts[i]))

    def forget(self, sessions: Iterable[str]) -> None:
        """Drop these sessions' served sets (a data-rights erasure of the person who paged through them)."""
        for sid in sessions:
            self._open.pop(sid, None)

    def expire(self, now: float) -> None:
        """Forget sessions that started more than ``ttl_s`` before ``now``, oldest first: sessions are kept in
        the order they opened, so this stops at the first one still open (a per-request cost that does not grow
        with the number of open sessions)."""
        while self._open:
            sid, (t, _) = next(iter(self._open.items()))
            if now - t <= self.ttl_s:
                return
            del self._open[sid]

    def __len__(self) -> int:
        return len(self._open)


__all__ = ["Sessions", "RequestId", "parse_request_id", "format_request_id"]
