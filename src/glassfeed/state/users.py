"""The user table: external id, handle, onboarding interests (topic ids) and community, by user idx."""

from __future__ import annotations

from typing import Any

import numpy as np

from glassfeed.state._columns import Grow
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
        self._ids: list[str | None] = [None]
        self._handles: list[str] = [""]
        self._interests: list[list[int]] = [[]]
        self._community = Grow(np.int32, -1)

    def add(self, users: dict[str, Any]) -> None:
        """Install rows as from ``Store.load_users`` (idx, id, handle, interests, community)."""
        for idx, uid, handle, interests in zip(users["idx"].tolist(), users["id"], users["handle"], users["interests"]):
            while len(self._ids) <= idx:
                self._ids.append(None)
                self._handles.append("")
                self._interests.append([])
            self._ids[idx] = uid
            self._handles[idx] = handle
            self._interests[idx] = [self._topics.id(t) for t in interests]
        self._community.ensure(len(self._ids))
        if len(users["idx"]):
            self._community.a[users["idx"]] = community_column(users["community"])

    def forget_user(self, u: int) -> None:
        """Anonymise the row after a data-rights erasure, as ``Store.delete_user_data`` does: the handle becomes
        the id; interests and community are cleared."""
        self._handles[u] = self._ids[u] or ""
        self._interests[u] = []
        self._community.a[u] = -1

    @property
    def n(self) -> int:
        """Number of user slots in use (the highest idx)."""
        return len(self._ids) - 1

    def id_of(self, u: int) -> str | None:
        return self._ids[u]

    def handle_of(self, u: int) -> str:
        return self._handles[u]

    def interests_of(self, u: int) -> list[int]:
        """Topic ids the user picked at onboarding."""
        return self._interests[u]

    def community(self, users: np.ndarray) -> np.ndarray:
        return self._community.a[users]
