"""The social graph: who follows, blocks and mutes whom, with follower counts."""

from __future__ import annotations

from collections.abc import Set
from itertools import chain

import numpy as np

from glassfeed.domain import EventKind
from glassfeed.state._columns import Grow
from glassfeed.store import Store

_FOLLOW = int(EventKind.FOLLOW)
_UNFOLLOW = int(EventKind.UNFOLLOW)
_BLOCK = int(EventKind.BLOCK)
_UNBLOCK = int(EventKind.UNBLOCK)
_MUTE = int(EventKind.MUTE)
_UNMUTE = int(EventKind.UNMUTE)
#: Event kinds that change the graph.
GRAPH_KINDS = frozenset({_FOLLOW, _UNFOLLOW, _BLOCK, _UNBLOCK, _MUTE, _UNMUTE})
_EMPTY: frozenset[int] = frozenset()


class SocialGraph:
    """Follow, block and mute edges by user idx. Sets returned by reads are the graph's own: do not mutate."""

    def __init__(self) -> None:
        self._following: list[set[int]] = [set()]
        self._followers = Grow(np.int64, 0)
        self._blocked: dict[int, set[int]] = {}
        self._blocked_by: dict[int, set[int]] = {}
        self._muted: dict[int, set[int]] = {}

    # ------------------------------------------------------------------ writes
    def ensure_users(self, n: int) -> None:
        """Room for user idx ``< n``."""
        while len(self._following) < n:
            self._following.append(set())
        self._followers.ensure(n)

    def load(self, store: Store, follows: bool = True, blocks_mutes: bool = True) -> None:
        """Install the store's current edges (follows and/or blocks and mutes)."""
        if follows:
            src, dst, _ = store.load_edges("follows")
            for s, d in zip(src.tolist(), dst.tolist()):
                self._following[s].add(d)
            np.add.at(self._followers.a, dst, 1)
        if blocks_mutes:
            s_, d_, _ = store.load_edges("blocks")
            for s, d in zip(s_.tolist(), d_.tolist()):
                self._blocked.setdefault(s, set()).add(d)
                self._blocked_by.setdefault(d, set()).add(s)
            s_, d_, _ = store.load_edges("mutes")
            for s, d in zip(s_.tolist(), d_.tolist()):
                self._muted.setdefault(s, set()).add(d)

    def apply(self, kind: int, u: int, v: int) -> None:
        """Fold one graph event (``kind`` in ``GRAPH_KINDS``) by ``u`` on ``v``."""
        if v <= 0:
            return
        if kind == _FOLLOW and v not in self._following[u]:
            self._following[u].add(v)
            self._followers.a[v] += 1
        elif kind == _UNFOLLOW and v in self._following[u]:
            self._following[u].discard(v)
            self._followers.a[v] -= 1
        elif kind == _BLOCK:
            self._blocked.setdefault(u, set()).add(v)
            self._blocked_by.setdefault(v, set()).add(u)
        elif kind == _UNBLOCK:
            self._blocked.get(u, set()).discard(v)
            self._blocked_by.get(v, set()).discard(u)
        elif kind == _MUTE:
            self._muted.setdefault(u, set()).add(v)
        elif kind == _UNMUTE:
            self._muted.get(u, set()).discard(v)

    def forget_user(self, u: int) -> None:
        """Drop the edges ``u`` made (data-rights deletion); edges others made to ``u`` are theirs and stay."""
        for v in self._blocked.pop(u, set()):
            self._blocked_by.get(v, set()).discard(u)
        self._muted.pop(u, None)
        for v in self._following[u]:
            self._followers.a[v] -= 1
        self._following[u] = set()

    # ------------------------------------------------------------------ reads
    def following(self, u: int) -> Set[int]:
        """Accounts ``u`` follows."""
        return self._following[u]

    def blocked(self, u: int) -> Set[int]:
        return self._blocked.get(u, _EMPTY)

    def muted(self, u: int) -> Set[int]:
        return self._muted.get(u, _EMPTY)

    def hidden(self, u: int) -> Set[int]:
        """Accounts whose posts ``u`` never sees: blocked by ``u``, blocking ``u``, or muted by ``u``."""
        parts = [s for s in (self._blocked.get(u), self._blocked_by.get(u), self._muted.get(u)) if s]
        return parts[0] if len(parts) == 1 else set().union(*parts)

    def follower_count(self, users: np.ndarray) -> np.ndarray:
        return self._followers.a[users]

    def following_count(self, users: np.ndarray) -> np.ndarray:
        fol = self._following
        return np.fromiter((len(fol[u]) for u in users.tolist()), np.int64, len(users))

    def follow_pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch row, followed account) for every account each user in ``users`` follows, row by row."""
        follows = [self._following[u] for u in users.tolist()]
        sizes = np.fromiter(map(len, follows), np.int64, len(follows))
        return (
            np.repeat(np.arange(len(users), dtype=np.int64), sizes),
            np.fromiter(chain.from_iterable(follows), np.int64, int(sizes.sum())),
        )
