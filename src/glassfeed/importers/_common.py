"""Shared helpers for dataset importers: guarded user/post creation and event batch writes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from glassfeed.domain import EventBatch
from glassfeed.ingest import Ingestor

Progress = Callable[[str, int, int], None]
CHUNK = 200_000


def noop(stage: str, done: int, total: int) -> None:
    return None


def ensure_new(ingestor: Ingestor, first_id: str, name: str) -> None:
    """Refuse to import a dataset twice into one store (ids would clash, events would double)."""
    if ingestor.store.user_idx(first_id) is not None:
        raise ValueError(f"dataset {name!r} is already in {ingestor.store.location} (user {first_id!r} exists)")


def create_users(ingestor: Ingestor, records: Sequence[dict[str, Any]], say: Progress) -> np.ndarray:
    """Create users in chunks (no read tokens: imported accounts are not people who log in here)."""
    out = np.empty(len(records), np.int64)
    for a in range(0, len(records), 50_000):
        made = ingestor.create_users(records[a : a + 50_000], with_tokens=False)
        out[a : a + len(made)] = [m["idx"] for m in made]
        say("users", a + len(made), len(records))
    return out


def create_posts(ingestor: Ingestor, records: Sequence[dict[str, Any]], say: Progress) -> np.ndarray:
    out = np.empty(len(records), np.int64)
    for a in range(0, len(records), 20_000):
        made = ingestor.create_posts(records[a : a + 20_000])
        out[a : a + len(made)] = [m["idx"] for m in made]
        say("posts", a + len(made), len(records))
    return out


def write_events(ingestor: Ingestor, events: EventBatch, say: Progress, stage: str = "events") -> int:
    """Resolved events (store idx), sorted by time, in durable chunks."""
    n = len(events)
    events = events.take(np.argsort(events.ts, kind="stable"))
    for a in range(0, n, CHUNK):
        ingestor.ingest_batch(events.take(np.arange(a, min(n, a + CHUNK))))
        say(stage, min(n, a + CHUNK), n)
    return n
