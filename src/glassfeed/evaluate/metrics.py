"""Top-k ranking metrics, vectorised over users, defined once for every protocol.

Conventions (shared by MS Recommenders' python_evaluation and RecBole, checked against both):
- a user counts only if it has at least one relevant (test) item; the mean is over those users;
- ``precision@k`` divides hits by ``k`` even when fewer than ``k`` items were recommended;
- ``recall@k`` divides hits by the user's number of relevant items (not by ``min(n_rel, k)``);
- ``ndcg@k`` is binary: DCG over the hits' ranks, ideal DCG over ``min(n_rel, k)`` ranks;
- ``map`` is MS Recommenders' ``map()`` (the "MAP" column of its published benchmark): the sum of
  precision at each hit rank within the top k, divided by ``n_rel``; ``map@k`` divides by ``min(n_rel, k)``
  instead (their newer ``map_at_k``, Spark's definition);
- ``mrr@k`` is the reciprocal rank of the first hit (0 without one); ``hit@k`` is 1 if any hit.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "map@k", "mrr", "hit")


def hits_matrix(recs: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n, k)``: is ``recs[i, j]`` a stored entry of row ``i`` of ``relevant``? Ids ``< 0`` never hit."""
    recs = np.asarray(recs, dtype=np.int64)
    relevant = sp.csr_matrix(relevant)
    n = recs.shape[0]
    if relevant.shape[0] != n:
        raise ValueError(f"recs has {n} rows but relevant has {relevant.shape[0]}")
    m = relevant.shape[1]
    rel_rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(relevant.indptr))
    rel_keys = np.sort(rel_rows * m + relevant.indices.astype(np.int64))
    keys = np.arange(n, dtype=np.int64)[:, None] * m + recs
    pos = np.searchsorted(rel_keys, keys)
    found = np.zeros_like(keys, dtype=bool)
    inside = pos < len(rel_keys)
    found[inside] = rel_keys[pos[inside]] == keys[inside]
    return found & (recs >= 0) & (recs < m)


def per_user_metrics(recs: np.ndarray, relevant: sp.csr_matrix, k: int | None = None) -> dict[str, np.ndarray]:
    """Each metric per user (rows of ``recs`` aligned with rows of ``relevant``), plus ``n_rel``."""
    recs = np.asarray(recs, dtype=np.int64)
    k = recs.shape[1] if k is None else k
    if recs.shape[1] < k:  # fewer recommendations than k: the missing slots are misses
        recs = np.pad(recs, ((0, 0), (0, k - recs.shape[1])), constant_values=-1)
    recs = recs[:, :k]
    relevant = sp.csr_matrix(relevant, copy=True)
    relevant.eliminate_zeros()
    hits = hits_matrix(recs, relevant)
    n_rel = np.diff(relevant.indptr).astype(np.float64)
    safe = np.maximum(n_rel, 1.0)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    n_hits = hits.sum(axis=1)
    discount = 1.0 / np.log2(ranks + 1.0)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_rel, k).astype(np.int64)]
    prec_at_hit = np.where(hits, np.cumsum(hits, axis=1) / ranks, 0.0).sum(axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return {
        "n_rel": n_rel,
        "precision": n_hits / k,
        "recall": n_hits / safe,
        "ndcg": (hits * discount).sum(axis=1) / np.maximum(ideal, 1e-12),
        "map": prec_at_hit / safe,
        "map@k": prec_at_hit / np.maximum(np.minimum(n_rel, k), 1.0),
        "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        "hit": (n_hits > 0).astype(np.float64),
    }


def evaluate_topk(recs: np.ndarray, test: sp.csr_matrix, k: int | None = None) -> dict[str, float]:
    """Mean of each metric over users with at least one test item; keys like ``"ndcg@10"``, ``"map"``, ``"users"``.

    ``recs`` is ``(n_users, >=k)`` item ids best first (``-1`` = empty slot), row ``i`` for row ``i`` of ``test``;
    every stored entry of ``test`` is relevant.
    """
    recs = np.asarray(recs)
    k = recs.shape[1] if k is None else k
    per = per_user_metrics(recs, test, k)
    counted = per["n_rel"] > 0
    out: dict[str, float] = {}
    for name in METRICS:
        key = "map" if name == "map" else (f"map@{k}" if name == "map@k" else f"{name}@{k}")
        out[key] = float(per[name][counted].mean()) if counted.any() else 0.0
    out["users"] = int(counted.sum())
    return out
