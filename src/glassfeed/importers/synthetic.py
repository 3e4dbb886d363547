"""Write a generated :class:`SyntheticNetwork` into the store through the Ingestor.

Users and posts go through the validating dict path; follows and events (millions) as ``EventBatch`` chunks
through ``Ingestor.ingest_batch``. External ids are ``u<i>`` and ``p<i>`` for the network's i-th user/post.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.importers._common import Progress, noop
from glassfeed.ingest import Ingestor


@dataclass
class WriteResult:
    users: int
    posts: int
    follows: int
    events: int
    first_token: str | None  # read token of user u0 (shown once; used by `glassfeed demo`)


def user_id(i: int) -> str:
    return f"u{i}"


def post_id(i: int) -> str:
    return f"p{i}"


def _reply_safe_chunks(reply_to: np.ndarray, max_len: int) -> list[tuple[int, int]]:
    """Split posts (in creation order) into chunks where no post replies to one in its own chunk."""
    out, a, n = [], 0, len(reply_to)
    rt = reply_to.tolist()
    for b in range(n):
        if b - a >= max_len or rt[b] >= a:
            out.append((a, b))
            a = b
    if a < n:
        out.append((a, n))
    return out


def write_network(
    net: Any,
    ingestor: Ingestor,
    *,
    chunk: int = 250_000,
    top_interests: int = 3,
    progress: Progress | None = None,
    with_tokens: bool = True,
) -> WriteResult:
    """Write users (interests = top topics, community), posts, initial follows and all events of ``net`` (a
    ``sim.generate.SyntheticNetwork``; not imported here, since the simulator builds on the importers)."""
    say = progress or noop
    n_u, n_p = net.n_users, net.n_posts
    top = np.argsort(-net.user_interests, axis=1)[:, :top_interests]
    users = [
        {
            "id": user_id(i),
            "handle": f"user{i}",
            "created_at": float(net.user_created[i]),
            "interests": [net.topics[t] for t in top[i]],
            "community": int(net.user_community[i]),
        }
        for i in range(n_u)
    ]
    say("users", 0, n_u)
    made = ingestor.create_users(users, with_tokens=with_tokens)
    user_idx = np.array([m["idx"] for m in made], dtype=np.int64)
    say("users", n_u, n_u)

    post_idx = np.empty(n_p, dtype=np.int64)
    rt = net.post_reply_to.astype(np.int64)
    qual = np.clip(net.post_quality.astype(np.float64), 0, 1).tolist()
    div = np.clip(net.post_divisiveness.astype(np.float64), 0, 1).tolist()
    authors, created, topic = net.post_author.tolist(), net.post_created.tolist(), net.post_topic.tolist()
    for a, b in _reply_safe_chunks(rt, 20_000):
        recs = [
            {
                "id": post_id(i),
                "author": user_id(authors[i]),
                "text": net.post_text[i],
                "created_at": created[i],
                "topics": [net.topics[topic[i]]],
                "quality": qual[i],
                "divisiveness": div[i],
                "reply_to": post_id(int(rt[i])) if rt[i] >= 0 else None,
            }
            for i in range(a, b)
        ]
        out = ingestor.create_posts(recs)
        post_idx[a:b] = [o["idx"] for o in out]
        say("posts", b, n_p)

    n_f = len(net.follow_src)
    order = np.argsort(net.follow_created, kind="stable")
    fol = EventBatch.from_columns(
        kind=np.full(n_f, int(EventKind.FOLLOW), np.int8),
        user=user_idx[net.follow_src[order]],
        target_user=user_idx[net.follow_dst[order]],
        ts=net.follow_created[order],
    )
    _write(ingestor, fol, chunk, lambda d: say("follows", d, n_f))

    n_e = net.n_events
    e = net.events
    ev = EventBatch.from_columns(
        kind=e.kind,
        user=user_idx[e.user],
        post=np.where(e.post >= 0, post_idx[np.maximum(e.post, 0)], -1),
        target_user=np.where(e.target_user >= 0, user_idx[np.maximum(e.target_user, 0)], -1),
        ts=e.ts,
        value=e.value,
        position=e.position,
    )
    _write(ingestor, ev, chunk, lambda d: say("events", d, n_e))
    return WriteResult(
        users=n_u, posts=n_p, follows=n_f, events=n_e, first_token=made[0].get("token") if made else None
    )


def _write(ingestor: Ingestor, events: EventBatch, chunk: int, tick: Callable[[int], None]) -> None:
    n = len(events)
    with ingestor.store.bulk_load(n):
        for a in range(0, n, chunk):
            ingestor.ingest_batch(events.take(np.arange(a, min(n, a + chunk))))
            tick(min(n, a + chunk))
