"""The seen-posts table: compact per-person arrays, merged and pruned to the retention window (issue 17 soak)."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings
from glassfeed.state.seen import SeenPosts
from glassfeed.store import open_store

H = 3600.0


def _table(created: np.ndarray, merge_at: int = 4, retention_h: float = 10.0) -> SeenPosts:
    return SeenPosts(merge_at, retention_h * H, lambda p: created[p])


def test_reads_merge_and_return_sorted_distinct_posts() -> None:
    created = np.full(100, 1_000.0)
    seen = _table(created)
    seen.add(7, [5, 3], now=1_000.0)
    seen.add(7, [3, 9], now=1_000.0)
    assert seen.get(7).tolist() == [3, 5, 9] and seen.get(7).dtype == np.int32
    assert seen.get(8).tolist() == [] and seen.count(7) == 3
    with pytest.raises(ValueError):
        seen.get(7)[0] = 1  # a read-only view: the table is not changed behind its back


def test_posts_older_than_the_retention_are_forgotten_at_a_merge() -> None:
    created = np.zeros(100)
    created[10:20] = 0.0  # old posts
    created[20:30] = 20 * H  # new posts
    seen = _table(created, merge_at=4, retention_h=10.0)
    seen.add(1, range(10, 14), now=1 * H)  # merged at 4; all young then
    assert seen.get(1).tolist() == [10, 11, 12, 13]
    seen.add(1, range(20, 24), now=21 * H)  # newest event 21 h: posts created at 0 h are beyond 10 h
    assert seen.get(1).tolist() == [20, 21, 22, 23]


def test_memory_is_four_bytes_per_pair_after_a_merge() -> None:
    created = np.full(10_000, 5.0)
    seen = _table(created, merge_at=64)
    for u in range(50):
        seen.add(u, range(u, u + 1_000), now=5.0)
    assert seen.nbytes() == 50 * 1_000 * 4


def test_forget_drops_a_person() -> None:
    seen = _table(np.zeros(10))
    seen.add(3, [1, 2], now=0.0)
    seen.forget(3)
    assert seen.get(3).tolist() == []


def test_a_policy_older_than_the_retention_is_refused(tmp_path) -> None:
    """A policy serving posts older than the retention would show forgotten posts again: refused at start."""
    settings = load_settings(store={"path": tmp_path / "s.db"}, state={"seen_retention_h": 24.0})
    store = open_store(settings.store.path)
    with pytest.raises(ValueError, match="seen_retention_h"):
        FeedService(Ingestor(store), settings)
    store.close()
