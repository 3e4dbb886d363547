"""The user table: external id, handle, onboarding interests (topic ids) and community, by user idx.

Ids and handles are packed UTF-8 (``Strings``) and each person's interests are one tuple shared by everyone who
picked the same topics: a person costs a few dozen bytes here, not a few hundred."""

from __future__ import annotations

from typing import Any

import numpy as np

from glassfeed.state._columns import Grow, Strings
from glassfeed.state.topics import Topics

_INT32 = np.iinfo(np.int32)


def community_column(values: Any) -> np.ndarray:
    """Communities as int32, -1 (unknown) for anything else a store row may hold: ``None``, a value outside
    int32, a non-integer. Ingest refuses such values, but a state must load from any row the store holds."""
    arr = values if isinstance(values, np.ndarray) else np.array(list(values), dtype=object)
    if arr.dtype.kind in "iu":
        return np.where((arr >= _INT32.min) & (arr <= _INT32.max), arr, -1).astype(np.int32)
    return np.array([v if type(v) is int and _INT32.min <= v <= _INT32.max else -1 for v in arr.tolist()], np.int32)


class UserTable:
    """Users by store idx (slot 0 unused)."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self._n = 0  # the highest idx loaded
        self._ids = Strings()
        self._handles = Strings()
        self._interests: list[tuple[int, ...]] = [()]
        self._shared: dict[tuple[int, ...], tuple[int, ...]] = {(): ()}  # one tuple per distinct interest list
        self._community = Grow(np.int32, -1)
        self._created = Grow(np.float64, np.nan)

    def add(self, users: dict[str, Any]) -> None:
        """Install rows as from ``Store.load_users`` (idx, id, handle, interests, community)."""
        idxs = users["idx"].tolist()
        if not idxs:
            return
        self._n = max(self._n, max(idxs))
        if len(self._interests) <= self._n:
            self._interests.extend([()] * (self._n + 1 - len(self._interests)))
        self._ids.set(idxs, users["id"])
        self._handles.set(idxs, users["handle"])
        for idx, interests in zip(idxs, users["interests"]):
            key = tuple(self._topics.id(t) for t in interests)
            self._interests[idx] = self._shared.setdefault(key, key)
        self._community.ensure(self._n + 1)
        self._community.a[users["idx"]] = community_column(users["community"])
        if "created_at" in users:
            self._created.ensure(self._n + 1)
            self._created.a[users["idx"]] = users["created_at"]

    def forget_user(self, u: int) -> None:
        """Anonymise the row after a data-rights erasure, as ``Store.delete_user_data`` does: the handle becomes
        the id; interests and community are cleared."""
        self._handles.set([u], [self._ids.text(u)])
        self._interests[u] = ()
        self._community.a[u] = -1

    @property
    def n(self) -> int:
        """Number of user slots in use (the highest idx)."""
        return self._n

    def id_of(self, u: int) -> str | None:
        return self._ids.get(u)

    def handle_of(self, u: int) -> str:
        return self._handles.text(u)

    def interests_of(self, u: int) -> list[int]:
        """Topic ids the user picked at onboarding; a new list."""
        return list(self._interests[u])

    def community(self, users: np.ndarray) -> np.ndarray:
        return self._community.a[users]

    def created(self, users: np.ndarray) -> np.ndarray:
        """When each account was created (epoch seconds; NaN when unknown)."""
        self._created.ensure(self._n + 1)
        return self._created.a[np.asarray(users, np.int64)]
