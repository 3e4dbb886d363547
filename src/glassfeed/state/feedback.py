"""What each person told the engine, directly or through behaviour: decayed user->author affinity (X's "real
graph"), "see less" on authors, posts already shown, muted words and saved feed preferences."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Set
from typing import Any

import numpy as np

from glassfeed.domain import EventKind
from glassfeed.settings import StateSettings
from glassfeed.state._columns import decay_factors, groups, lookup_pairs
from glassfeed.state.pairs import PairTable, pair_codes
from glassfeed.state.seen import SeenPosts
from glassfeed.store import Store

_IMPRESSION = int(EventKind.IMPRESSION)
_REPORT = int(EventKind.REPORT)
#: Kinds that record "see less of this author".
SEE_LESS_KINDS = frozenset({int(EventKind.SEE_LESS), int(EventKind.NOT_INTERESTED)})
_SEE_LESS = np.array(sorted(SEE_LESS_KINDS))
_EMPTY: frozenset[int] = frozenset()


class Feedback:
    """Per-user feedback tables; ``affinity`` decays with ``affinity_half_life_h`` from the origin ``t0``."""

    def __init__(self, config: StateSettings, post_created: Callable[[np.ndarray], np.ndarray]) -> None:
        self.lam_aff = math.log(2) / (config.affinity_half_life_h * 3600.0)
        self.t0 = 0.0
        self._aff_w = np.zeros(max(int(k) for k in EventKind) + 1)
        for name, w in config.affinity_weights.items():
            self._aff_w[int(EventKind.parse(name))] = w
        self._affinity = PairTable()  # (user, author) -> decayed affinity in origin units
        self._see_less: dict[int, dict[int, float]] = {}  # user -> author -> last see_less time
        self._seen = SeenPosts(config.seen_merge_at, config.seen_retention_h * 3600.0, post_created)
        self._reported: dict[int, set[int]] = {}  # user -> posts they reported (hidden from their feeds)
        self._muted_words: dict[int, list[str]] = {}
        self._prefs: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ writes
    def load(self, store: Store) -> None:
        """Install the store's muted words and saved preferences."""
        self._muted_words = store.load_muted_words()
        self._prefs = store.load_prefs()

    def set_muted_words(self, u: int, words: list[str]) -> None:
        self._muted_words[u] = words

    def set_prefs(self, u: int, prefs: dict[str, Any]) -> None:
        self._prefs[u] = prefs

    def rebase(self, t: float) -> None:
        self._affinity.scale(math.exp(-self.lam_aff * (t - self.t0)))
        self.t0 = t

    def apply(self, kind: np.ndarray, user: np.ndarray, post: np.ndarray, ts: np.ndarray, authors: np.ndarray) -> None:
        """Fold a batch of events in; ``authors`` is the post's author, or the target user for user-targeted
        events (<= 0 when neither)."""
        aff_w = self._aff_w[kind]
        aff_m = (aff_w != 0) & (authors > 0)
        if aff_m.any():
            uniq, inv = np.unique(pair_codes(user[aff_m], authors[aff_m]), return_inverse=True)
            add = np.bincount(inv, weights=aff_w[aff_m] * np.exp(self.lam_aff * (ts[aff_m] - self.t0)))
            self._affinity.add(uniq, add)
        imp = (kind == _IMPRESSION) & (post > 0)
        if imp.any():
            now = float(ts[imp].max())
            for u, ps in groups(user[imp], post[imp]):
                self._seen.add(u, ps, now)
        reports = (kind == _REPORT) & (post > 0)
        if reports.any():
            for u, ps in groups(user[reports], post[reports]):
                self._reported.setdefault(u, set()).update(ps)
        for i in np.flatnonzero(np.isin(kind, _SEE_LESS)).tolist():
            a = int(authors[i])
            if a > 0:
                self._see_less.setdefault(int(user[i]), {})[a] = float(ts[i])

    def compact(self) -> None:
        """Merge what waits in small per-person buffers (seen posts, new affinity pairs) into the compact arrays:
        after a rebuild, where those buffers would otherwise hold a little for every person."""
        self._seen.compact()
        self._affinity.compact()

    def forget_user(self, u: int) -> None:
        for d in (self._see_less, self._reported, self._muted_words, self._prefs):
            d.pop(u, None)
        self._affinity.forget_user(u)
        self._seen.forget(u)

    # ------------------------------------------------------------------ reads
    def affinity(self, users: np.ndarray, authors: np.ndarray, now: float | np.ndarray) -> np.ndarray:
        """Decayed user->author affinity per pair at ``now`` (a time, or one per pair)."""
        return self._affinity.lookup(users, authors) * decay_factors(self.lam_aff, now, self.t0, len(users))

    def top_affinities(self, u: int, now: float, k: int = 20) -> list[tuple[int, float]]:
        """The user's ``k`` strongest (author, affinity at ``now``) pairs (ties: the lower author idx first)."""
        f = math.exp(-self.lam_aff * (now - self.t0))
        authors, vals = self._affinity.row(u)
        top = np.argsort(-vals, kind="stable")[:k]
        return [(a, v * f) for a, v in zip(authors[top].tolist(), vals[top].tolist())]

    def see_less_at(self, users: np.ndarray, authors: np.ndarray) -> np.ndarray:
        """Time of each user's last "see less" on the author (0 = never)."""
        return lookup_pairs(self._see_less, users, authors)

    @property
    def any_see_less(self) -> bool:
        return bool(self._see_less)

    def see_less_authors(self, u: int) -> list[int]:
        return list(self._see_less.get(u, {}))

    def seen(self, u: int) -> np.ndarray:
        """Posts shown to ``u`` (logged impressions) that are young enough to be served, sorted (``SeenPosts``)."""
        return self._seen.get(u)

    def reported(self, u: int) -> Set[int]:
        """Posts ``u`` reported: hidden from ``u``'s feeds whatever the policy."""
        return self._reported.get(u, _EMPTY)

    @property
    def any_reported(self) -> bool:
        return bool(self._reported)

    def muted_words(self, u: int) -> list[str]:
        return self._muted_words.get(u, [])

    def prefs(self, u: int) -> Mapping[str, Any]:
        """Saved feed preferences (policy, weights, topics_more / topics_less); empty when none."""
        return self._prefs.get(u, {})
