"""The topic vocabulary shared by users' onboarding interests and posts' topics (lower-cased name <-> id)."""

from __future__ import annotations

from collections.abc import Callable


class Topics:
    """Dense topic ids in order of first appearance; ``on_new`` is told the new vocabulary size."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self.on_new: list[Callable[[int], None]] = []

    def id(self, name: str) -> int:
        """The id of ``name`` (case-insensitive), adding it when new."""
        name = name.lower()
        t = self._index.get(name)
        if t is None:
            t = len(self._names)
            self._names.append(name)
            self._index[name] = t
            for cb in self.on_new:
                cb(t + 1)
        return t

    def lookup(self, name: str) -> int | None:
        """The id of a known topic (``name`` as stored: lower case), else None."""
        return self._index.get(name)

    def name(self, t: int) -> str:
        return self._names[t]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def __len__(self) -> int:
        return len(self._names)
