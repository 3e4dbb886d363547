"""Approximate maximum-inner-product search over item vectors (hnswlib HNSW graph)."""

from __future__ import annotations

from typing import Self

import hnswlib
import numpy as np


class ANNIndex:
    """Inner-product HNSW index: ``fit(item_vectors, ids)``, then ``query(user_vectors, k) -> (ids, scores)``.

    ``M`` is the graph degree, ``ef_construction`` the build beam, ``ef`` the query beam (raised to at least
    ``k`` per query); higher values trade speed for recall. When hnswlib cannot return ``k`` results (its
    "Cannot return the results in a contiguous 2D array", seen for k of a few hundred on small feed indexes),
    that batch is answered exactly from the stored vectors instead of failing.

    Below ``exact_below`` items no graph is built and every query is exact (one matrix product and a partial
    sort): at feed-window sizes (tens of thousands of posts) that is both cheaper than building the graph and
    exact, as faiss's advice to use a flat index for small collections says.

    Learned by ``fit``: ``size_`` (vectors stored), ``exact_`` (whether queries are answered exactly) and
    ``index_`` (the hnswlib graph, ``None`` when exact).
    """

    def __init__(
        self,
        dim: int,
        M: int = 16,
        ef: int = 100,
        ef_construction: int = 200,
        num_threads: int = 1,
        seed: int = 42,
        exact_below: int = 0,
    ):
        self.dim, self.M, self.ef, self.ef_construction = dim, M, ef, ef_construction
        self.num_threads, self.seed, self.exact_below = num_threads, seed, exact_below
        self.exact_ = False
        self.index_: hnswlib.Index | None = None
        self.size_ = 0

    def fit(self, item_vectors: np.ndarray, ids: np.ndarray | None = None) -> Self:
        vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected item vectors of shape (n, {self.dim}), got {vectors.shape}")
        ids = np.arange(len(vectors)) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(ids) != len(vectors) or len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique, one per vector")  # hnswlib would silently overwrite
        if not np.isfinite(vectors).all():
            raise ValueError("item vectors must be finite")
        self._vectors, self._ids, self.size_ = vectors, ids, len(vectors)
        self.exact_ = len(vectors) < self.exact_below
        if self.exact_:
            self.index_ = None
            return self
        index = hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(
            max_elements=max(len(vectors), 1), M=self.M, ef_construction=self.ef_construction, random_seed=self.seed
        )
        if len(vectors):
            index.add_items(vectors, ids, num_threads=self.num_threads)
        index.set_ef(self.ef)
        self.index_ = index
        return self

    def query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids and inner products per query row, best first; slots beyond the index size hold -1 / -inf."""
        if self.index_ is None and not self.exact_:
            raise RuntimeError("ANNIndex.query before fit")
        vectors = np.atleast_2d(np.ascontiguousarray(vectors, dtype=np.float32))
        kk = min(k, self.size_)
        ids = np.full((len(vectors), k), -1, dtype=np.int64)
        scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        if kk == 0 or len(vectors) == 0:
            return ids, scores
        if self.exact_ or self.index_ is None:
            ids[:, :kk], scores[:, :kk] = self._exact(vectors, kk)
            return ids, scores
        self.index_.set_ef(max(self.ef, kk))
        try:
            labels, dist = self.index_.knn_query(vectors, k=kk, num_threads=self.num_threads)
            ids[:, :kk] = labels
            scores[:, :kk] = 1.0 - dist  # hnswlib's "ip" distance is 1 - <q, v>
        except RuntimeError:
            # hnswlib cannot return k results when its graph search reaches fewer than k items (large k on a
            # small index): answer exactly instead, which is cheap at that size
            ids[:, :kk], scores[:, :kk] = self._exact(vectors, kk)
        return ids, scores

    def _exact(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` by inner product, best first (ties by position, so results are deterministic)."""
        full = vectors @ self._vectors.T
        if k < full.shape[1]:
            part = np.argpartition(-full, k - 1, axis=1)[:, :k]
            part.sort(axis=1)  # position order, so equal scores come out in a fixed order
        else:
            part = np.broadcast_to(np.arange(full.shape[1]), full.shape).copy()
        sc = np.take_along_axis(full, part, axis=1)
        order = np.argsort(-sc, axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        return self._ids[top], np.take_along_axis(sc, order, axis=1)
