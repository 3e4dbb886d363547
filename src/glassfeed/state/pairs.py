"""A compact table of numbers keyed by (user, key) pairs, for per-person tables that grow with engagement (the
user -> author affinity).

A dict of dicts costs about 100 bytes per pair (the inner dict's slot, an int key and a float object). Here the
pairs are one sorted ``int64`` array of codes ``user << 32 | key`` and a ``float64`` array of values: 16 bytes per
pair. Pairs not yet in the arrays wait in a small dict and are merged in when it reaches ``merge_at`` entries (or
an eighth of the table), so adding is amortised O(log n) and reads are binary searches. Every value is the same
sequence of float operations as the dict of dicts applied (a first addition is ``0.0 + v``; a scaling multiplies
each value), so the numbers are bit-for-bit those of the old table.
"""

from __future__ import annotations

import numpy as np

_KEY_BITS = 32
_KEY_MASK = (1 << _KEY_BITS) - 1


def pair_codes(users: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``users << 32 | keys`` as ``int64`` (keys are non-negative and below 2**32)."""
    return (np.asarray(users).astype(np.int64) << _KEY_BITS) | np.asarray(keys).astype(np.int64)


class PairTable:
    """float64 values by (user, key); absent pairs read as 0."""

    def __init__(self, merge_at: int = 4096) -> None:
        self.merge_at = merge_at
        self._codes = np.zeros(0, np.int64)
        self._vals = np.zeros(0, np.float64)
        self._new: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._codes) + len(self._new)

    def __bool__(self) -> bool:
        return len(self) > 0

    def nbytes(self) -> int:
        """Bytes of the sorted arrays (the small dict of new pairs excluded)."""
        return int(self._codes.nbytes + self._vals.nbytes)

    # ------------------------------------------------------------------ writes
    def add(self, codes: np.ndarray, values: np.ndarray) -> None:
        """``table[code] += value`` for distinct ``codes`` (as from ``pair_codes``)."""
        if not len(codes):
            return
        at, hit = self._find(codes)
        self._vals[at[hit]] += values[hit]
        new = self._new
        for c, v in zip(codes[~hit].tolist(), values[~hit].tolist()):
            new[c] = new.get(c, 0.0) + v
        if len(new) >= max(self.merge_at, len(self._codes) // 8):
            self._merge()

    def scale(self, f: float) -> None:
        """Multiply every value by ``f``."""
        self._vals *= f
        for c in self._new:
            self._new[c] *= f

    def forget_user(self, u: int) -> None:
        """Drop every pair of ``u``."""
        lo, hi = self._span(u)
        if hi > lo:
            self._codes = np.delete(self._codes, np.s_[lo:hi])
            self._vals = np.delete(self._vals, np.s_[lo:hi])
        for c in [c for c in self._new if c >> _KEY_BITS == u]:
            del self._new[c]

    # ------------------------------------------------------------------ reads
    def lookup(self, users: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The value of each pair ``(users[i], keys[i])`` (0 when absent)."""
        out = np.zeros(len(users))
        if not len(users) or not self:
            return out
        want = pair_codes(users, keys)
        at, hit = self._find(want)
        out[hit] = self._vals[at[hit]]
        if self._new:
            miss = np.flatnonzero(~hit)
            get = self._new.get
            out[miss] = np.fromiter((get(c, 0.0) for c in want[miss].tolist()), np.float64, len(miss))
        return out

    def row(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys ascending, values) of ``u``'s pairs."""
        lo, hi = self._span(u)
        keys, vals = self._codes[lo:hi] & _KEY_MASK, self._vals[lo:hi]
        extra = sorted((c & _KEY_MASK, v) for c, v in self._new.items() if c >> _KEY_BITS == u)
        if extra:
            keys = np.concatenate([keys, np.array([k for k, _ in extra], np.int64)])
            vals = np.concatenate([vals, np.array([v for _, v in extra], np.float64)])
            order = np.argsort(keys, kind="stable")
            keys, vals = keys[order], vals[order]
        return keys, vals

    def compact(self) -> None:
        """Merge the pairs waiting in the small dict into the arrays."""
        self._merge()

    # ------------------------------------------------------------------ internals
    def _find(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._codes)
        if not n:
            return np.zeros(len(codes), np.int64), np.zeros(len(codes), bool)
        at = np.minimum(np.searchsorted(self._codes, codes), n - 1)
        return at, self._codes[at] == codes

    def _span(self, u: int) -> tuple[int, int]:
        lo = int(np.searchsorted(self._codes, u << _KEY_BITS))
        hi = int(np.searchsorted(self._codes, (u + 1) << _KEY_BITS))
        return lo, hi

    def _merge(self) -> None:
        if not self._new:
            return
        codes = np.concatenate([self._codes, np.fromiter(self._new.keys(), np.int64, len(self._new))])
        vals = np.concatenate([self._vals, np.fromiter(self._new.values(), np.float64, len(self._new))])
        order = np.argsort(codes, kind="stable")
        self._codes, self._vals = codes[order], vals[order]
        self._new = {}


__all__ = ["PairTable", "pair_codes"]
