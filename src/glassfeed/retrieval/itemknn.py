"""Item-based k-nearest-neighbours with shrunk cosine similarity."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr, topk_per_row_sparse


class ItemKNN(Recommender):
    """sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink); score(u, j) = sum over u's items i of w_ui sim(i, j).

    Each item keeps its ``K`` most similar neighbours; ``shrink`` damps similarities resting on few co-users.
    Learned: ``similarity_``, the sparse items x items matrix whose column ``j`` holds ``j``'s neighbours.
    """

    def __init__(self, K: int = 100, shrink: float = 10.0, binary: bool = True):
        self.K, self.shrink, self.binary = K, shrink, binary

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        X = as_csr(X, binary=self.binary)
        Xc = X.T.tocsr()
        norms = np.sqrt(np.asarray(Xc.multiply(Xc).sum(axis=1)).ravel()).astype(np.float32)
        G = (Xc @ Xc.T).tocoo()
        keep = G.row != G.col
        vals = G.data[keep] / (norms[G.row[keep]] * norms[G.col[keep]] + self.shrink + 1e-9)
        S = sp.csr_matrix((vals, (G.row[keep], G.col[keep])), shape=G.shape, dtype=np.float32)
        # neighbours of each *target* item j are a column of S: prune columns, i.e. rows of S^T
        self.similarity_ = topk_per_row_sparse(S.T, self.K).T.tocsr()
        self.n_items_ = X.shape[1]
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        rows = as_csr(X[np.atleast_1d(userids)], binary=self.binary)
        return np.asarray((rows @ self.similarity_).todense(), dtype=np.float32)
