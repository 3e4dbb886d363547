"""Notification candidates from the event stream, batch-first, and their aggregation into notifications.

``from_events`` turns committed events into one candidate per (recipient, source event): a reply, quote, like or
repost of your post, a new follower. ``mentions`` adds one per ``@handle`` in new posts. ``aggregate`` folds
likes and reposts of one post within the policy's window into one notification ("A, B and 12 others liked your
post"); every other candidate is a notification of its own.

Idempotency is in the keys: a candidate's key names its source (``"reply:<seq>"``, ``"mention:<post>:<user>"``)
and an aggregated notification's key names its group (``"like:<post>:<window>"``), which lists the source events
it holds; folding the same events in twice (a replay, a retry, a second worker) changes nothing
(``Inbox.add``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.notifications.policy import AGGREGATED, KIND_CODE, KINDS

#: Event kinds that notify the author of the post they target, and the notification kind each makes.
_POST_EVENTS: dict[int, str] = {
    int(EventKind.REPLY): "reply",
    int(EventKind.QUOTE): "quote",
    int(EventKind.LIKE): "like",
    int(EventKind.REPOST): "repost",
}
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,64})")


@dataclass(slots=True)
class NotificationCandidates:
    """Parallel arrays, one row per (recipient, source); ``key`` is the row's idempotency key."""

    user: np.ndarray  # recipient idx
    kind: np.ndarray  # KIND_CODE
    post: np.ndarray  # the post it is about (-1: none)
    actor: np.ndarray  # who acted (-1: none)
    ts: np.ndarray
    source: np.ndarray  # the source event's seq (mentions: the mentioning post's idx)
    key: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx: np.ndarray) -> NotificationCandidates:
        return NotificationCandidates(
            self.user[idx],
            self.kind[idx],
            self.post[idx],
            self.actor[idx],
            self.ts[idx],
            self.source[idx],
            [self.key[i] for i in np.asarray(idx).tolist()],
        )

    @staticmethod
    def concat(parts: Sequence[NotificationCandidates]) -> NotificationCandidates:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return NotificationCandidates(
            cat("user"),
            cat("kind"),
            cat("post"),
            cat("actor"),
            cat("ts"),
            cat("source"),
            [k for p in parts for k in p.key],
        )


def _keep_others(c: NotificationCandidates, hidden: Callable[[int], set[int]] | None) -> NotificationCandidates:
    """Drop self-notifications, rows without a recipient, and senders the recipient blocked or muted."""
    keep = (c.user > 0) & (c.user != c.actor)
    if hidden is not None:
        at = np.flatnonzero(keep)
        keep[at] = [int(a) not in hidden(int(u)) for u, a in zip(c.user[at].tolist(), c.actor[at].tolist())]
    return c.take(np.flatnonzero(keep))


def from_events(
    batch: EventBatch,
    author_of: Callable[[np.ndarray], np.ndarray],
    hidden: Callable[[int], set[int]] | None = None,
) -> NotificationCandidates:
    """One candidate per committed event that notifies someone (``author_of``: post idx -> author idx;
    ``hidden``: a recipient's blocked and muted accounts)."""
    kind = batch.kind.astype(np.int64)
    on_post = np.isin(kind, list(_POST_EVENTS)) & (batch.post > 0)
    follow = (kind == int(EventKind.FOLLOW)) & (batch.target_user > 0)
    rows = np.flatnonzero(on_post | follow)
    k = kind[rows]
    posts = np.where(on_post[rows], batch.post[rows], -1)
    recipient = np.where(on_post[rows], author_of(np.maximum(posts, 0)), batch.target_user[rows])
    codes = np.array([KIND_CODE[_POST_EVENTS.get(int(x), "follow")] for x in k.tolist()], np.int64)
    seq = batch.seq[rows]
    c = NotificationCandidates(
        user=recipient.astype(np.int64),
        kind=codes,
        post=posts.astype(np.int64),
        actor=batch.user[rows].astype(np.int64),
        ts=batch.ts[rows].astype(np.float64),
        source=seq.astype(np.int64),
        key=[f"{KINDS[c]}:{s}" for c, s in zip(codes.tolist(), seq.tolist())],
    )
    return _keep_others(c, hidden)


def mentions(
    posts: np.ndarray,
    texts: Sequence[str],
    authors: np.ndarray,
    created: np.ndarray,
    user_of_handle: Mapping[str, int],
    hidden: Callable[[int], set[int]] | None = None,
) -> NotificationCandidates:
    """One candidate per distinct ``@handle`` of a known account in each new post's text."""
    user, post, actor, ts = [], [], [], []
    for p, text, a, t in zip(posts.tolist(), texts, authors.tolist(), created.tolist()):
        for h in dict.fromkeys(m.lower() for m in MENTION.findall(text)):
            u = user_of_handle.get(h)
            if u is not None:
                user.append(u)
                post.append(p)
                actor.append(a)
                ts.append(t)
    n = len(user)
    c = NotificationCandidates(
        user=np.asarray(user, np.int64),
        kind=np.full(n, KIND_CODE["mention"], np.int64),
        post=np.asarray(post, np.int64),
        actor=np.asarray(actor, np.int64),
        ts=np.asarray(ts, np.float64),
        source=np.asarray(post, np.int64),
        key=[f"mention:{p}:{u}" for p, u in zip(post, user)],
    )
    return _keep_others(c, hidden)


@dataclass(slots=True)
class Notifications:
    """Aggregated notifications, parallel arrays plus per-row lists (``actors`` in order of acting)."""

    user: np.ndarray
    kind: np.ndarray
    post: np.ndarray
    ts: np.ndarray  # the newest source's time
    first_ts: np.ndarray
    key: list[str]
    actors: list[list[int]]
    sources: list[list[int]]

    def __len__(self) -> int:
        return len(self.user)

    @property
    def count(self) -> np.ndarray:
        """Distinct people each notification is about."""
        return np.array([len(a) for a in self.actors], np.int64)


def aggregate(c: NotificationCandidates, window_h: float) -> Notifications:
    """Fold ``AGGREGATED`` kinds per (recipient, kind, post, window of ``window_h`` hours) into one notification;
    every other candidate stays one notification. Rows come out ordered by (recipient, newest time)."""
    agg_codes = [KIND_CODE[k] for k in AGGREGATED]
    grouped = np.isin(c.kind, agg_codes)
    window = np.floor(c.ts / (window_h * 3600.0)).astype(np.int64)
    order = np.lexsort((c.ts, window, c.post, c.kind, c.user))
    groups: dict[tuple[int, ...], int] = {}
    out_user: list[int] = []
    out_kind: list[int] = []
    out_post: list[int] = []
    out_ts: list[float] = []
    out_first: list[float] = []
    keys: list[str] = []
    actors: list[list[int]] = []
    sources: list[list[int]] = []

    def _start(u: int, k: int, p: int, t: float) -> None:
        out_user.append(u)
        out_kind.append(k)
        out_post.append(p)
        out_ts.append(t)
        out_first.append(t)

    for i in order.tolist():
        u, k, p, t = int(c.user[i]), int(c.kind[i]), int(c.post[i]), float(c.ts[i])
        if grouped[i]:
            gk = (u, k, p, int(window[i]))
            at = groups.get(gk)
            if at is None:
                groups[gk] = at = len(keys)
                _start(u, k, p, t)
                keys.append(f"{KINDS[k]}:{p}:{int(window[i])}")
                actors.append([])
                sources.append([])
            a = int(c.actor[i])
            if a not in actors[at]:
                actors[at].append(a)
            sources[at].append(int(c.source[i]))
            out_ts[at] = max(out_ts[at], t)
        else:
            _start(u, k, p, t)
            keys.append(c.key[i])
            actors.append([int(c.actor[i])])
            sources.append([int(c.source[i])])
    n = Notifications(
        np.asarray(out_user, np.int64),
        np.asarray(out_kind, np.int64),
        np.asarray(out_post, np.int64),
        np.asarray(out_ts, np.float64),
        np.asarray(out_first, np.float64),
        keys,
        actors,
        sources,
    )
    return n


@dataclass
class InboxItem:
    """One notification as a person's inbox holds it."""

    key: str
    kind: str
    post: int
    actors: list[int]
    sources: set[int]
    created_at: float
    updated_at: float
    read: bool = False

    @property
    def count(self) -> int:
        return len(self.actors)


class Inbox:
    """Every person's notifications by key, merged idempotently (in memory; the lever's store-backed inbox folds
    the same way). Adding a notification whose sources are all already held changes nothing."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, InboxItem]] = {}

    def add(self, n: Notifications) -> list[tuple[int, str]]:
        """Fold in notifications; returns the (person, key) of those created or changed."""
        changed = []
        for i in range(len(n)):
            u, key = int(n.user[i]), n.key[i]
            box = self.items.setdefault(u, {})
            item = box.get(key)
            if item is None:
                box[key] = InboxItem(
                    key,
                    KINDS[int(n.kind[i])],
                    int(n.post[i]),
                    list(n.actors[i]),
                    set(n.sources[i]),
                    float(n.first_ts[i]),
                    float(n.ts[i]),
                )
                changed.append((u, key))
                continue
            new = [s for s in n.sources[i] if s not in item.sources]
            if not new:
                continue  # every source already held: a replay
            item.sources.update(new)
            item.actors += [a for a in n.actors[i] if a not in item.actors]
            item.updated_at = max(item.updated_at, float(n.ts[i]))
            item.read = False  # news on it: unread again
            changed.append((u, key))
        return changed

    def unread(self, user: int) -> int:
        return sum(1 for it in self.items.get(user, {}).values() if not it.read)

    def list(self, user: int) -> list[InboxItem]:
        """Newest first."""
        return sorted(self.items.get(user, {}).values(), key=lambda it: (-it.updated_at, it.key))
