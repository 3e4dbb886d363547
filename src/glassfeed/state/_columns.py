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
    backing array for the owning part only. Its row ``i`` holds idx ``base + i``: ``shift`` drops the rows below a
    new base (the serving state's post retention window), and ``take``/``at`` read those dropped idx as ``fill``.
    Writes index ``a`` at ``idx - base``."""

    __slots__ = ("a", "base", "fill", "width")

    def __init__(self, dtype: Any, fill: Any, width: int | None = None) -> None:
        self.fill = fill
        self.width = width
        self.base = 0
        shape = (16,) if width is None else (16, width)
        self.a: np.ndarray = np.full(shape, fill, dtype=dtype)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The values of an array of idx (``fill`` below ``base``)."""
        if not self.base:
            return self.a[idx]
        rel = np.asarray(idx) - self.base
        out = self.a[np.maximum(rel, 0)]
        old = rel < 0
        if old.any():
            out[old] = self.fill
        return out

    def at(self, i: int) -> Any:
        """The value of one idx (``fill`` below ``base``)."""
        return self.fill if i < self.base else self.a[i - self.base]

    def shift(self, base: int) -> None:
        """Drop the rows of idx below ``base`` (the array is copied, so their memory is returned)."""
        if base > self.base:
            self.a = self.a[min(base - self.base, len(self.a)) :].copy()
            self.base = base

    def ensure(self, n: int) -> None:
        """Room for indexes ``< n`` (capacity at least doubles, so appends are amortised O(1))."""
        n -= self.base
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


class Strings:
    """A growable column of strings by idx (absent: ``None``), packed as UTF-8 in one buffer with a start and a
    length per row: about 12 bytes a row plus the text, where a list of ``str`` costs 57 bytes a row plus the
    text, in small objects that stay scattered over the heap. A row written again points at its new bytes (the
    old ones stay in the buffer until more of it is dropped than kept). ``shift`` forgets the rows below a base,
    as ``Grow.shift`` does; rows below it read as absent and are not written."""

    __slots__ = ("_buf", "_dead", "_len", "_start")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._start = Grow(np.int64, 0)
        self._len = Grow(np.int32, -1)  # -1: absent
        self._dead = 0  # bytes of the buffer no row points at

    def set(self, idx: Sequence[int], values: Sequence[str | None]) -> None:
        """Row ``idx[i]`` becomes ``values[i]`` (rows below the base are skipped)."""
        if not len(idx):
            return
        at = np.asarray(idx, np.int64) - self._len.base
        keep = at >= 0
        if not keep.all():
            values = [v for v, k in zip(values, keep.tolist()) if k]
            at = at[keep]
            if not len(at):
                return
        raw = [b"" if v is None else v.encode() for v in values]
        n = np.fromiter(map(len, raw), np.int64, len(raw))
        top = int(at.max()) + 1 + self._len.base
        self._start.ensure(top)
        self._len.ensure(top)
        self._dead += int(np.maximum(self._len.a[at], 0).sum())
        self._start.a[at] = len(self._buf) + np.cumsum(n) - n
        self._len.a[at] = np.where(np.fromiter((v is None for v in values), bool, len(raw)), -1, n)
        self._buf += b"".join(raw)

    def get(self, i: int) -> str | None:
        lens, r = self._len.a, i - self._len.base
        n = lens.item(r) if 0 <= r < len(lens) else -1
        if n < 0:
            return None
        s = self._start.a.item(r)
        return self._buf[s : s + n].decode()

    def text(self, i: int) -> str:
        """The row's string, ``""`` when absent."""
        lens, r = self._len.a, i - self._len.base
        n = lens.item(r) if 0 <= r < len(lens) else -1
        if n <= 0:
            return ""
        s = self._start.a.item(r)
        return self._buf[s : s + n].decode()

    def drop(self, idx: np.ndarray) -> None:
        """Rows ``idx`` become absent; the buffer is rewritten once more of it is dropped than kept."""
        rel = np.asarray(idx, np.int64) - self._len.base
        rel = rel[(rel >= 0) & (rel < len(self._len.a))]
        self._dead += int(np.maximum(self._len.a[rel], 0).sum())
        self._len.a[rel] = -1
        if self._dead > len(self._buf) - self._dead:
            self._compact()

    def shift(self, base: int) -> None:
        """Forget the rows below ``base`` and their bytes (``Grow.shift``)."""
        old = self._len.base
        if base > old:
            self.drop(np.arange(old, min(base, old + len(self._len.a)), dtype=np.int64))
            self._start.shift(base)
            self._len.shift(base)

    def nbytes(self) -> int:
        return len(self._buf) + self._start.a.nbytes + self._len.a.nbytes

    def _compact(self) -> None:
        rows = np.flatnonzero(self._len.a > 0)
        start, n = self._start.a[rows], self._len.a[rows].astype(np.int64)
        buf = self._buf
        self._buf = bytearray(b"".join(buf[s : s + k] for s, k in zip(start.tolist(), n.tolist())))
        self._start.a[rows] = np.cumsum(n) - n
        self._dead = 0


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
