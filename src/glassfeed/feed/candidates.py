"""The flat, batch-first candidate table that flows through the pipeline (one row per (user, post) pair)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glassfeed.feed.policy import SOURCES

#: Source priority when the same post comes from several sources (the first named wins the explanation).
SOURCE_PRIORITY = {name: i for i, name in enumerate(("following", "social_proof", "collaborative", "cold_start",
                                                      "trending"))}
SOURCE_CODE = {name: i for i, name in enumerate(SOURCES)}


@dataclass(slots=True)
class Candidates:
    """Parallel arrays: ``row`` indexes the batch of users; ``via`` is the reposter/liker idx (0 if none)."""

    row: np.ndarray
    post: np.ndarray
    source: np.ndarray  # SOURCE_CODE values
    source_score: np.ndarray
    via: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> "Candidates":
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0), z)

    @classmethod
    def build(cls, rows: list[int], posts: list[int], source: str, scores: list[float],
              via: list[int] | None = None) -> "Candidates":
        n = len(posts)
        return cls(np.asarray(rows, np.int64), np.asarray(posts, np.int64),
                   np.full(n, SOURCE_CODE[source], np.int64), np.asarray(scores, np.float64),
                   np.asarray(via if via is not None else np.zeros(n), np.int64))

    def __len__(self) -> int:
        return len(self.post)

    def take(self, idx: np.ndarray) -> "Candidates":
        return Candidates(self.row[idx], self.post[idx], self.source[idx], self.source_score[idx], self.via[idx],
                          {k: v[idx] for k, v in self.extra.items()})

    @staticmethod
    def concat(parts: list["Candidates"]) -> "Candidates":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Candidates.empty()
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("row", "post", "source", "source_score", "via")))

    def dedupe(self) -> "Candidates":
        """One row per (user, post): keep the highest-priority source."""
        if not len(self):
            return self
        prio = np.array([SOURCE_PRIORITY[s] for s in SOURCES])[self.source]
        order = np.lexsort((prio, self.post, self.row))
        r, p = self.row[order], self.post[order]
        first = np.ones(len(order), bool)
        first[1:] = (r[1:] != r[:-1]) | (p[1:] != p[:-1])
        return self.take(order[first])
