"""The social graph: who follows, blocks and mutes whom, with follower counts.

Follows are the bulk of the graph: each person's followed accounts are one sorted ``int32`` array (4 bytes an
edge, where a Python set costs about 90). Blocks and mutes are few and stay sets."""

from __future__ import annotations

from collections.abc import Set

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
_NONE = np.zeros(0, np.int32)
_NONE.setflags(write=False)


class SocialGraph:
    """Follow, block and mute edges by user idx. Sets returned by reads are the graph's own: do not mutate."""

    def __init__(self) -> None:
        self._following: list[np.ndarray] = [_NONE]  # per user: followed accounts, sorted int32, read-only
        self._followers = Grow(np.int64, 0)
        self._blocked: dict[int, set[int]] = {}
        self._blocked_by: dict[int, set[int]] = {}
        self._muted: dict[int, set[int]] = {}

    # ------------------------------------------------------------------ writes
    def ensure_users(self, n: int) -> None:
        """Room for user idx ``< n``."""
        if len(self._following) < n:
            self._following.extend([_NONE] * (n - len(self._following)))
        self._followers.ensure(n)

    def load(self, store: Store, follows: bool = True, blocks_mutes: bool = True) -> None:
        """Install the store's current edges (follows and/or blocks and mutes)."""
        if follows:
            src, dst, _ = store.load_edges("follows")
            self._add_follows(np.asarray(src, np.int64), np.asarray(dst, np.int64))
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
        if kind in (_FOLLOW, _UNFOLLOW):
            fol = self._following[u]
            at = int(np.searchsorted(fol, v))
            has = at < len(fol) and int(fol[at]) == v
            if kind == _FOLLOW and not has:
                self._following[u] = _frozen(np.insert(fol, at, v))
                self._followers.a[v] += 1
            elif kind == _UNFOLLOW and has:
                self._following[u] = _frozen(np.delete(fol, at))
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
        self._followers.a[self._following[u]] -= 1  # distinct accounts: one decrement each
        self._following[u] = _NONE

    def _add_follows(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Install follow edges ``src -> dst`` (the store's edge table: no duplicates)."""
        if not len(src):
            return
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        cut = np.flatnonzero(src[1:] != src[:-1]) + 1
        for s, d in zip(src[np.r_[0, cut]].tolist(), np.split(dst, cut)):
            have = self._following[s]
            self._following[s] = _frozen(np.union1d(have, d))
        np.add.at(self._followers.a, dst, 1)

    # ------------------------------------------------------------------ reads
    def following(self, u: int) -> Set[int]:
        """Accounts ``u`` follows (a new set built from the compact array)."""
        return frozenset(self._following[u].tolist())

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
        flat = np.concatenate(follows).astype(np.int64) if follows else np.zeros(0, np.int64)
        return np.repeat(np.arange(len(users), dtype=np.int64), sizes), flat


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only ``int32`` array (the graph's rows are shared with readers)."""
    out = a.astype(np.int32, copy=False)
    out.setflags(write=False)
    return out
