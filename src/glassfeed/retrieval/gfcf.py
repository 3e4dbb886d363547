"""GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?", CIKM 2021): a closed-form graph
filter on the degree-normalised item-item matrix, with no training loop.

With ``R = D_U^-1/2 X D_I^-1/2`` (``D_U``, ``D_I`` the user and item degrees of the binary ``X``), a user's scores
are the linear filter ``x_u R'R`` plus ``alpha`` times the ideal low-pass filter ``x_u D_I^-1/2 V V' D_I^1/2``,
where ``V`` holds ``R``'s top ``k`` right singular vectors (the leading eigenvectors of ``R'R``). The linear part
is a normalised co-occurrence model; the low-pass part keeps only the smoothest ``k`` graph signals, as a
low-rank factor model does, and so ranks differently from a full-rank item-item model such as DLAE.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr


class GFCF(Recommender):
    """Linear filter ``R'R`` plus ``alpha`` x the ideal low-pass filter over ``R``'s top ``k`` singular vectors.

    ``alpha = 0`` is the linear filter alone. The item-item matrix is dense (O(items^2) memory, as EASE) and the
    singular vectors come from a dense symmetric eigensolver (deterministic, O(items^3)), so it suits catalogues
    of a few thousand items. Learned: ``P_`` (the ``n_items_`` square ``R'R``), ``V_`` (``n_items_ x k``, the
    singular vectors) and ``item_degree_`` (each item's training users; 1 for items without any).
    """

    def __init__(self, k: int = 256, alpha: float = 0.3, binary: bool = True):
        self.k, self.alpha, self.binary = k, alpha, binary

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        X = as_csr(X, binary=self.binary)
        n_items = self.n_items_ = X.shape[1]
        d_u = np.maximum(np.asarray(X.sum(axis=1), dtype=np.float64).ravel(), 1.0)
        d_i = np.maximum(np.asarray(X.sum(axis=0), dtype=np.float64).ravel(), 1.0)
        R = sp.diags(d_u**-0.5) @ X.astype(np.float64) @ sp.diags(d_i**-0.5)
        P = np.asarray((R.T @ R).toarray(), dtype=np.float64)
        k = min(self.k, n_items)
        _, V = scipy.linalg.eigh(P, subset_by_index=[n_items - k, n_items - 1], check_finite=False)
        self.P_ = P.astype(np.float32)
        self.V_ = np.ascontiguousarray(V[:, ::-1], dtype=np.float32)  # leading vector first
        self.item_degree_ = d_i.astype(np.float32)
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        rows = as_csr(X[np.atleast_1d(userids)], binary=self.binary)
        out = np.asarray(rows @ self.P_, dtype=np.float32)
        if self.alpha:
            low = np.asarray((rows @ sp.diags(self.item_degree_**-0.5)) @ self.V_, dtype=np.float32)
            out += self.alpha * (low @ self.V_.T) * np.sqrt(self.item_degree_)
        return out
