"""Most-popular baseline: every user gets the items with the most (weighted) interactions."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr


class Popularity(Recommender):
    """Score = an item's number of interacting users (``binary=True``) or its summed weight (``item_scores_``)."""

    def __init__(self, binary: bool = True):
        self.binary = binary

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        X = as_csr(X)
        counts = np.diff(X.tocsc().indptr) if self.binary else np.asarray(X.sum(axis=0)).ravel()
        self.item_scores_ = counts.astype(np.float32)
        self.n_items_ = X.shape[1]
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        n = len(np.atleast_1d(userids))
        return np.tile(self.item_scores_, (n, 1))
