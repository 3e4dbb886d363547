"""Helpers the state's parts share: a growable numpy column, and vectorised lookups into per-user tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import chain, pairwise
from typing import Any

import numpy as np


def decay_factors(lam: float, now: float | np.ndarray, t0: float, n: int) -> np.ndarray:
    """``exp(-lam * (now - t0))`` per row (``now`` a time or one time per row): one scalar ``math.exp`` per
    distinct time, so a pair's value never depends on the other rows it is computed with."""
    if np.ndim(now) == 0:
        return np.full(n, math.exp(-lam * (float(now) - t0)))
    times, inv = np.unique(np.asarray(now, np.float64), return_inverse=True)
    return np.array([math.exp(-lam * (t - t0)) for t in times.tolist()])[inv]


class Grow:
    """A growable numpy column indexed by entity idx (slot 0 unused, as store idx starts at 1).

    Each part of the serving state keeps its columns private and answers reads through methods; ``a`` is the
    backing array for the owning part only."""

    __slots__ = ("a", "fill", "width")

    def __init__(self, dtype: Any, fill: Any, width: int | None = None) -> None:
        self.fill = fill
        self.width = width
        shape = (16,) if width is None else (16, width)
        self.a: np.ndarray = np.full(shape, fill, dtype=dtype)

    def ensure(self, n: int) -> None:
        """Room for indexes ``< n`` (capacity at least doubles, so appends are amortised O(1))."""
        if n > len(self.a):
            cap = max(n, 2 * len(self.a))
            shape = (cap,) if self.width is None else (cap, self.a.shape[1])
            b = np.full(shape, self.fill, dtype=self.a.dtype)
            b[: len(self.a)] = self.a
            self.a = b

    def widen(self, width: int) -> None:
        """Room for ``width`` columns (2-D columns only)."""
        if self.width is not None and width > self.a.shape[1]:
            b = np.full((len(self.a), max(width, 2 * self.a.shape[1])), self.fill, dtype=self.a.dtype)
            b[:, : self.a.shape[1]] = self.a
            self.a = b


def lookup_pairs(table: Mapping[int, Mapping[int, float]], users: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """table[user][key] per pair (0 when absent): the batch's users' rows become one sorted array of
    (user, key) codes, and every pair is found by a single binary search."""
    out = np.zeros(len(users))
    if not table or not len(users):
        return out
    rows = [(u, r) for u in np.unique(users).tolist() if (r := table.get(u))]
    if not rows:
        return out
    sizes = np.fromiter((len(r) for _, r in rows), np.int64, len(rows))
    n = int(sizes.sum())
    owner = np.repeat(np.fromiter((u for u, _ in rows), np.int64, len(rows)), sizes)
    code = (owner << 32) | np.fromiter(chain.from_iterable(r.keys() for _, r in rows), np.int64, n)
    val = np.fromiter(chain.from_iterable(r.values() for _, r in rows), np.float64, n)
    order = np.argsort(code)
    code, val = code[order], val[order]
    want = (users.astype(np.int64) << 32) | keys.astype(np.int64)
    at = np.minimum(np.searchsorted(code, want), n - 1)
    hit = code[at] == want
    out[hit] = val[at[hit]]
    return out


def member_pairs(table_keys: np.ndarray, users: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each ``(users[i] << 32) | keys[i]`` code is in the sorted code array ``table_keys``."""
    if not len(table_keys) or not len(users):
        return np.zeros(len(users), bool)
    want = (users.astype(np.int64) << 32) | keys.astype(np.int64)
    at = np.minimum(np.searchsorted(table_keys, want), len(table_keys) - 1)
    return table_keys[at] == want


def group_by_user(users: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """[(user, positions)] for each distinct user in ``users`` (pairs are usually grouped by user)."""
    if len(users) and (users == users[0]).all():
        return [(int(users[0]), np.arange(len(users)))]
    order = np.argsort(users, kind="stable")
    u = users[order]
    cut = np.flatnonzero(u[1:] != u[:-1]) + 1
    return [(int(g[0]), idx) for g, idx in zip(np.split(u, cut), np.split(order, cut))]


def groups(keys: np.ndarray, values: np.ndarray | Sequence[Any]) -> list[tuple[int, list[Any]]]:
    """[(key, [values in original order])] for each distinct key (stable grouping)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1, len(k)]
    v = values[order].tolist() if isinstance(values, np.ndarray) else [values[i] for i in order.tolist()]
    return [(int(k[a]), v[a:b]) for a, b in pairwise(starts.tolist())]
