"""The flat, batch-first candidate table that flows through the pipeline (one row per (user, post) pair)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glassfeed.feed.policy import SOURCES

#: Source priority when the same post comes from several sources (the first named wins the explanation).
SOURCE_PRIORITY = {
    name: i
    for i, name in enumerate(("following", "social_proof", "collaborative", "cold_start", "content", "trending"))
}
SOURCE_CODE = {name: i for i, name in enumerate(SOURCES)}
#: What ``Candidates.dedupe`` records in ``extra`` about the merged rows of a pair, and each fact's value for a
#: pair no source found (e.g. a logged impression in training's replay).
CANDIDATE_FACTS: dict[str, float] = {"source_mask": 0, "social_proof": 0.0, "collab_rank": np.nan, "collab_top": np.nan}


def no_facts(n: int) -> dict[str, np.ndarray]:
    """``CANDIDATE_FACTS`` for ``n`` pairs that no source found."""
    return {k: np.full(n, v, np.int64 if k == "source_mask" else np.float64) for k, v in CANDIDATE_FACTS.items()}


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
    def empty(cls) -> Candidates:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0), z)

    @classmethod
    def build(
        cls, rows: list[int], posts: list[int], source: str, scores: list[float], via: list[int] | None = None
    ) -> Candidates:
        n = len(posts)
        return cls(
            np.asarray(rows, np.int64),
            np.asarray(posts, np.int64),
            np.full(n, SOURCE_CODE[source], np.int64),
            np.asarray(scores, np.float64),
            np.asarray(via if via is not None else np.zeros(n), np.int64),
        )

    def __len__(self) -> int:
        return len(self.post)

    def take(self, idx: np.ndarray) -> Candidates:
        return Candidates(
            self.row[idx],
            self.post[idx],
            self.source[idx],
            self.source_score[idx],
            self.via[idx],
            {k: v[idx] for k, v in self.extra.items()},
        )

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Candidates.empty()
        row, post, source, source_score, via = (
            np.concatenate([getattr(p, f) for p in parts]) for f in ("row", "post", "source", "source_score", "via")
        )
        return Candidates(row, post, source, source_score, via)

    def dedupe(self) -> Candidates:
        """One row per (user, post): keep the highest-priority source, and record in ``extra`` what the merged
        rows knew: ``source_mask`` (bit ``SOURCE_CODE[s]`` set for every source s that found the pair) and
        ``social_proof`` (the social-proof source's score, 0 where it did not find the pair) and ``collab_rank``
        (the post's 0-based place in the user's collaborative list, NaN where that source did not find it) and
        ``collab_top`` (the highest collaborative score in the user's list, the same for all the user's pairs; NaN
        where the source found nothing for the user), which the heads read as features (``feed.features``)."""
        if not len(self):
            out = self.take(np.zeros(0, np.int64))
            out.extra.update(no_facts(0))
            return out
        collab_rank = np.full(len(self), np.nan)
        collab_top = np.full(int(self.row.max()) + 1, np.nan)
        c = np.flatnonzero(self.source == SOURCE_CODE["collaborative"])
        if len(c):  # 0-based rank of the post in the user's collaborative list, by its score; the list's top score
            o = c[np.lexsort((-self.source_score[c], self.row[c]))]
            r = self.row[o]
            first = np.searchsorted(r, r)
            collab_rank[o] = np.arange(len(o)) - first
            lead = o[np.unique(first)]  # each row's best-scored entry heads its run
            collab_top[self.row[lead]] = self.source_score[lead]
        prio = np.array([SOURCE_PRIORITY[s] for s in SOURCES])[self.source]
        if self.row.max() < 1 << 20 and self.post.max() < 1 << 39:  # one int64 key sorts far faster than lexsort
            order = np.argsort((self.row << 43) | (self.post << 4) | prio, kind="stable")
        else:
            order = np.lexsort((prio, self.post, self.row))
        r, p = self.row[order], self.post[order]
        first = np.ones(len(order), bool)
        first[1:] = (r[1:] != r[:-1]) | (p[1:] != p[:-1])
        starts = np.flatnonzero(first)
        src = self.source[order]
        out = self.take(order[first])
        out.extra["source_mask"] = np.bitwise_or.reduceat(np.left_shift(1, src), starts)
        sp_score = np.where(src == SOURCE_CODE["social_proof"], self.source_score[order], 0.0)
        out.extra["social_proof"] = np.maximum.reduceat(sp_score, starts)
        out.extra["collab_rank"] = np.fmin.reduceat(collab_rank[order], starts)
        out.extra["collab_top"] = collab_top[out.row]
        return out


def top_k_per_row(rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the ``k`` highest ``scores`` within each value of ``rows`` (one partial sort per row that
    is over the cap, so the cost grows with the rows over ``k``, not with a sort of the whole batch)."""
    if not len(rows):
        return np.zeros(0, np.int64)
    counts = np.bincount(rows)
    if counts.max() <= k:
        return np.arange(len(rows))
    order = np.argsort(rows, kind="stable") if (np.diff(rows) < 0).any() else np.arange(len(rows))
    sc = scores[order]
    ends = np.cumsum(counts)
    keep = np.ones(len(rows), bool)
    for r in np.flatnonzero(counts > k).tolist():
        a, b = int(ends[r] - counts[r]), int(ends[r])
        keep[a:b] = False
        keep[a + np.argpartition(-sc[a:b], k - 1)[:k]] = True
    return np.sort(order[keep])


def expand_pairs(
    row: np.ndarray, account: np.ndarray, account_of: np.ndarray, n_items: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand (batch row, followed account) pairs into one entry per item in the account's slice of a flat
    per-account table (``n_items[j]`` items for distinct account j, in order; ``account_of`` maps each pair to
    j): returns (row, index into the flat table, account) per entry, in pair order."""
    cnt = n_items[account_of]
    total = int(cnt.sum())
    first = np.r_[0, np.cumsum(n_items)[:-1]][account_of]
    at = np.repeat(first - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
    return np.repeat(row, cnt), at, np.repeat(account, cnt)
