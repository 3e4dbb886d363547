"""Candidate generators for "people you may know", batch-first over sparse matrices.

Every generator has one contract: ``score(graph, users) -> CSR (len(users), n)``, a positive score for each account
it proposes to each user of the batch (absent = not proposed). ``generator_scores`` runs them all and drops what is
never suggested (the user, accounts they follow, accounts hidden from them: blocked by them, blocking them or muted
by them). ``top_per_row`` keeps each row's best ``k``, ties broken by more followers then the lower idx
(deterministic). ``candidates`` unions each generator's top ``depth`` and reads every feature of every pair from
the same score matrices, so a pair found by one generator still carries the others' evidence.

With ``A`` the follow matrix (``A[u, v] = 1``: u follows v), ``E`` the users x items engagement matrix and ``d(w)``
the number of distinct accounts w follows or is followed by:

- ``common_neighbours``: ``#{w : u -> w -> v}``, "N people you follow follow them" (``A A``);
- ``adamic_adar``: ``Σ_{u -> w -> v} 1 / log d(w)`` (Adamic & Adar 2003): a shared contact who knows few people
  says more;
- ``resource_allocation``: ``Σ_{u -> w -> v} 1 / d(w)`` (Zhou, Lü & Zhang 2009);
- ``follows_you``: ``v -> u`` and not ``u -> v`` (the follow-back);
- ``co_followed``: ``#{w : w -> u and w -> v}``, "N people who follow you also follow them" (``Aᵀ A``);
- ``co_engagement``: ``Σ_{items both engaged with} 1 / log(2 + popularity)``: shared niche posts count more;
- ``community``: everyone in the user's community (known communities only), scored by their follower count;
- ``contacts``: v's own contact hash is among u's uploaded contacts and both opted in (``PeopleGraph.contacts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from glassfeed.suggest.graph import PeopleGraph

Score = Callable[[PeopleGraph, np.ndarray], sp.csr_matrix]


def _csr(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float64)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _via(g: PeopleGraph, users: np.ndarray, weight: np.ndarray | None) -> sp.csr_matrix:
    """Two-step paths ``u -> w -> v`` from each user, each path weighted by ``weight[w]`` (None: 1)."""
    first = g.follows[users]
    if weight is not None:
        first = first @ sp.diags(weight)
    return _csr(first @ g.follows)


def common_neighbours(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    return _via(g, users, None)


def adamic_adar(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    return _via(g, users, 1.0 / np.log(np.maximum(g.neighbour_degree, 2.0)))


def resource_allocation(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    return _via(g, users, 1.0 / np.maximum(g.neighbour_degree, 1.0))


def follows_you(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    return _csr(g.followers[users])


def co_followed(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    return _csr(g.followers[users] @ g.follows)


def co_engaged(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    """Count of items both engaged with (a feature and the explanation's number, not a generator)."""
    return _csr(g.engaged[users] @ g.engaged.T)


def co_engagement(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    w = 1.0 / np.log(2.0 + g.item_popularity)
    return _csr((g.engaged[users] @ sp.diags(w)) @ g.engaged.T)


def community(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    comm = g.community
    known = np.flatnonzero(comm >= 0)
    if not len(known):
        return sp.csr_matrix((len(users), g.n))
    order = known[np.argsort(comm[known], kind="stable")]
    cuts = np.searchsorted(comm[order], comm[users], side="left")
    ends = np.searchsorted(comm[order], comm[users], side="right")
    ends[comm[users] < 0] = cuts[comm[users] < 0]
    sizes = ends - cuts
    rows = np.repeat(np.arange(len(users)), sizes)
    cols = order[np.concatenate([np.arange(a, b) for a, b in zip(cuts, ends)])] if sizes.sum() else rows
    vals = 1.0 + g.in_degree[cols]
    return _csr(sp.csr_matrix((vals, (rows, cols)), shape=(len(users), g.n)))


def contacts(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    return _csr(g.contacts[users])


#: The generators, in the order of the evaluation table and of ``Candidates.found_by``'s columns.
GENERATORS: dict[str, Score] = {
    "common_neighbours": common_neighbours,
    "adamic_adar": adamic_adar,
    "resource_allocation": resource_allocation,
    "follows_you": follows_you,
    "co_followed": co_followed,
    "co_engagement": co_engagement,
    "community": community,
    "contacts": contacts,
}
#: Score matrices read as features only.
_EXTRA: dict[str, Score] = {"co_engaged": co_engaged}

#: The head's features, in column order: the generators' scores, the shared-item count, community match and
#: degrees (``their_*`` of the suggested account, ``your_*`` of the person asking).
FEATURES: tuple[str, ...] = (
    *GENERATORS,
    "co_engaged",
    "same_community",
    "their_followers",
    "their_following",
    "your_followers",
    "your_following",
)


def exclusions(g: PeopleGraph, users: np.ndarray) -> sp.csr_matrix:
    """``(len(users), n)`` ones where an account is never suggested: the user, whom they follow, and whom they
    have blocked, muted or are blocked by."""
    own = sp.csr_matrix((np.ones(len(users)), (np.arange(len(users)), users)), shape=(len(users), g.n))
    return _csr(own + g.follows[users] + g.hidden[users])


def _drop(scores: sp.csr_matrix, mask: sp.csr_matrix) -> sp.csr_matrix:
    """``scores`` without the entries stored in ``mask`` (same shape)."""
    if not mask.nnz or not scores.nnz:
        return scores
    n = scores.shape[1]
    have = np.repeat(np.arange(scores.shape[0], dtype=np.int64), np.diff(scores.indptr)) * n + scores.indices
    gone = np.repeat(np.arange(mask.shape[0], dtype=np.int64), np.diff(mask.indptr)) * n + mask.indices
    out = scores.copy()
    out.data[np.isin(have, gone)] = 0.0
    return _csr(out)


def generator_scores(g: PeopleGraph, users: np.ndarray) -> dict[str, sp.csr_matrix]:
    """Every generator's (and feature-only score's) matrix for the batch, exclusions dropped."""
    users = np.asarray(users, np.int64)
    mask = exclusions(g, users)
    return {name: _drop(f(g, users), mask) for name, f in {**GENERATORS, **_EXTRA}.items()}


def top_per_row(scores: sp.csr_matrix, k: int, tiebreak: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, score) of each row's best ``k`` stored entries, row by row, best first; ties go to the larger
    ``tiebreak[column]`` (the follower count), then the lower column."""
    s = _csr(scores)
    rows = np.repeat(np.arange(s.shape[0], dtype=np.int64), np.diff(s.indptr))
    return rank_pairs(rows, s.indices.astype(np.int64), s.data, k, tiebreak)


def rank_pairs(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int, tiebreak: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat pairs ``(rows, cols, vals)`` sorted row by row, best ``vals`` first (ties: larger
    ``tiebreak[cols]``, then the lower column), keeping at most ``k`` per row."""
    order = np.lexsort((cols, -tiebreak[cols], -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    pos = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    keep = pos < k
    return rows[keep], cols[keep], vals[keep]


@dataclass(frozen=True)
class Candidates:
    """The flat candidate table of one batch: pair ``i`` proposes ``cand[i]`` to ``users[row[i]]``."""

    users: np.ndarray
    row: np.ndarray
    cand: np.ndarray
    X: np.ndarray  # (pairs, len(FEATURES)) float64, NaN where a feature is unknown
    found_by: np.ndarray  # (pairs, len(GENERATORS)) bool: the generator had the pair in its top depth

    def feature(self, name: str) -> np.ndarray:
        return self.X[:, FEATURES.index(name)]

    def __len__(self) -> int:
        return len(self.row)


def _lookup(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if not len(rows):
        return np.zeros(0)
    return np.asarray(m[rows, cols], dtype=np.float64).ravel()


def candidates(
    g: PeopleGraph,
    users: np.ndarray,
    depth: Mapping[str, int],
    scores: Mapping[str, sp.csr_matrix] | None = None,
) -> Candidates:
    """Each generator's best ``depth[name]`` accounts per user (0 or absent: off), unioned, with every feature.
    ``scores`` reuses matrices ``generator_scores`` already computed for this batch."""
    users = np.asarray(users, np.int64)
    s = dict(scores) if scores is not None else generator_scores(g, users)
    n = np.int64(g.n)
    found: dict[str, np.ndarray] = {}
    for name in GENERATORS:
        k = int(depth.get(name, 0))
        if k > 0:
            r, c, _ = top_per_row(s[name], k, g.in_degree)
            found[name] = r * n + c
    codes = np.unique(np.concatenate(list(found.values()))) if found else np.zeros(0, np.int64)
    row, cand = codes // n, codes % n
    X = _features(g, users, s, row, cand)
    by = np.zeros((len(codes), len(GENERATORS)), bool)
    for j, name in enumerate(GENERATORS):
        if name in found:
            by[:, j] = np.isin(codes, found[name], assume_unique=True)
    return Candidates(users, row, cand, X, by)


def _features(
    g: PeopleGraph, users: np.ndarray, s: Mapping[str, sp.csr_matrix], row: np.ndarray, cand: np.ndarray
) -> np.ndarray:
    """``(len(row), len(FEATURES))``: every feature of the pairs ``users[row[i]] -> cand[i]`` from the batch's
    score matrices ``s`` (``generator_scores(g, users)``) and the graph's degrees and communities."""
    X = np.empty((len(row), len(FEATURES)))
    for j, name in enumerate(FEATURES[: len(GENERATORS) + 1]):
        X[:, j] = _lookup(s[name], row, cand)
    cu, cv = g.community[users[row]], g.community[cand]
    X[:, FEATURES.index("same_community")] = np.where((cu >= 0) & (cv >= 0), (cu == cv).astype(float), np.nan)
    X[:, FEATURES.index("their_followers")] = g.in_degree[cand]
    X[:, FEATURES.index("their_following")] = g.out_degree[cand]
    X[:, FEATURES.index("your_followers")] = g.in_degree[users[row]]
    X[:, FEATURES.index("your_following")] = g.out_degree[users[row]]
    return X


def pair_features(g: PeopleGraph, users: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``(len(users), len(FEATURES))``: the features of the given pairs ``users[i] -> cand[i]``, read exactly as
    ``candidates`` reads them (a pair the exclusions drop, e.g. an account the user already follows in ``g``,
    reads 0 for every score)."""
    users, cand = np.asarray(users, np.int64), np.asarray(cand, np.int64)
    batch, row = np.unique(users, return_inverse=True)
    return _features(g, batch, generator_scores(g, batch), row.astype(np.int64), cand)
