"""Feed sessions: what each paging session was served, so later pages of it never repeat a post.

A page's request id is ``"<policy>:<session>.<page>"``: the policy tag lets audits split logs by policy, the
session groups the pages one cursor walks through. ``Sessions`` keeps the posts served per session (from the
pages ``FeedService`` ranks and from impressions logged with a request id, e.g. Bluesky's "seen" interactions)
and forgets sessions idle for longer than ``serving.session_ttl_s``.

With several workers (``[serving] redis_url`` set) a session's next page may be asked of another worker, so the
served sets live in Redis instead (``RedisSessions``: one set per session, ``SADD`` with an expiry), and so do the
pages kept for ``why`` (``RedisPages``); ``make_sessions`` and ``make_shared_pages`` pick by the settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol, cast

import numpy as np
import redis

from glassfeed.domain import EventBatch, EventKind
from glassfeed.settings import ServingSettings

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


def _impressions_by_session(batch: EventBatch) -> dict[str, tuple[float, list[int]]]:
    """The batch's impressions that carry a request id, grouped by session: (first ts, posts)."""
    out: dict[str, tuple[float, list[int]]] = {}
    if batch.request_id is None:
        return out
    imp = np.flatnonzero((batch.kind == _IMPRESSION) & (batch.post > 0))
    for i in imp.tolist():
        rid = batch.request_id[i]
        if rid:
            sid = parse_request_id(str(rid)).session
            out.setdefault(sid, (float(batch.ts[i]), []))[1].append(int(batch.post[i]))
    return out


class SessionStore(Protocol):
    """What ``FeedService`` asks of its paging sessions (``Sessions`` in memory, ``RedisSessions`` shared)."""

    ttl_s: float

    def served(self, session: str) -> set[int]: ...
    def add(self, session: str, posts: Iterable[int], ts: float) -> None: ...
    def record(self, batch: EventBatch) -> None: ...
    def forget(self, sessions: Iterable[str]) -> None: ...
    def expire(self, now: float) -> None: ...


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
        for sid, (ts, posts) in _impressions_by_session(batch).items():
            self.add(sid, posts, ts)

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


def redis_client(serving: ServingSettings) -> redis.Redis:
    """A client for ``[serving] redis_url`` with ``redis_timeout_s`` on connecting and on every answer."""
    t = serving.redis_timeout_s
    return redis.Redis.from_url(serving.redis_url, socket_timeout=t, socket_connect_timeout=t)


class RedisSessions:
    """Served posts per session in Redis, shared by every worker: ``<prefix>served:<session>`` is a set of post
    idx, expiring ``ttl_s`` seconds after the session's first page (Redis's wall clock, whatever
    ``[serving] clock`` says). Each call is one round trip (a pipeline)."""

    def __init__(self, client: redis.Redis, ttl_s: float, prefix: str) -> None:
        self.client, self.ttl_s, self.prefix = client, ttl_s, prefix

    def _key(self, session: str) -> str:
        return f"{self.prefix}served:{session}"

    def served(self, session: str) -> set[int]:
        members = cast(set[bytes], self.client.smembers(self._key(session)))
        return {int(p) for p in members}

    def add(self, session: str, posts: Iterable[int], ts: float) -> None:
        self._add_many({session: list(posts)})

    def _add_many(self, by_session: dict[str, list[int]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        ttl = max(1, int(self.ttl_s))
        for sid, posts in by_session.items():
            if posts:
                pipe.sadd(self._key(sid), *posts)
                pipe.expire(self._key(sid), ttl, nx=True)  # counted from the session's first page
        if len(pipe):
            pipe.execute()

    def record(self, batch: EventBatch) -> None:
        self._add_many({sid: posts for sid, (_, posts) in _impressions_by_session(batch).items()})

    def forget(self, sessions: Iterable[str]) -> None:
        keys = [self._key(s) for s in sessions]
        if keys:
            self.client.delete(*keys)

    def expire(self, now: float) -> None:
        """Nothing to do: Redis expires each set itself."""


class RedisPages:
    """The pages kept for ``why``, per person, in Redis so that any worker answers for a page another served:
    ``<prefix>why:<user>`` is a list of serialised pages, newest first, at most ``keep`` long, expiring
    ``ttl_s`` after the person's last page. ``FeedService`` (de)serialises them."""

    def __init__(self, client: redis.Redis, keep: int, ttl_s: float, prefix: str) -> None:
        self.client, self.keep, self.ttl_s, self.prefix = client, keep, ttl_s, prefix

    def _key(self, user: int) -> str:
        return f"{self.prefix}why:{user}"

    def push(self, user: int, page: bytes) -> None:
        key = self._key(user)
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(key, page)
        pipe.ltrim(key, 0, self.keep - 1)
        pipe.expire(key, max(1, int(self.ttl_s)))
        pipe.execute()

    def pages(self, user: int) -> list[bytes]:
        """The person's kept pages, newest first."""
        return cast(list[bytes], self.client.lrange(self._key(user), 0, -1))

    def forget(self, user: int) -> None:
        self.client.delete(self._key(user))


def make_sessions(serving: ServingSettings) -> Sessions | RedisSessions:
    """``RedisSessions`` on ``[serving] redis_url`` when it is set, else in-memory ``Sessions``."""
    if serving.redis_url:
        return RedisSessions(redis_client(serving), serving.session_ttl_s, serving.redis_prefix)
    return Sessions(serving.session_ttl_s)


def make_shared_pages(serving: ServingSettings) -> RedisPages | None:
    """``RedisPages`` on ``[serving] redis_url`` when it is set (kept as long as a paging session), else None."""
    if not serving.redis_url:
        return None
    return RedisPages(
        redis_client(serving), serving.explained_pages_per_user, serving.session_ttl_s, serving.redis_prefix
    )


__all__ = [
    "Sessions",
    "RedisSessions",
    "RedisPages",
    "SessionStore",
    "RequestId",
    "parse_request_id",
    "format_request_id",
    "make_sessions",
    "make_shared_pages",
    "redis_client",
]
