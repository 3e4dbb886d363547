"""EASE (Steck 2019): a closed-form item-item linear model, B = I - P / diag(P) with P = (X'X + lambda I)^-1."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr


class EASE(Recommender):
    """Shallow autoencoder with a zero diagonal, solved exactly; ``lam`` is the L2 penalty.

    ``gamma`` > 0 weights each user's row by n_u^(-gamma/2) in the Gram matrix X'X, so very active users do
    not dominate item co-occurrence (0 is Steck's EASE). The dense inverse costs O(items^3): ``max_items``
    keeps only the most popular items in the model (the rest score ``-inf``), which makes long-tail
    catalogues such as Last.fm tractable.

    Learned: ``items_`` (the modelled item columns, ascending) and ``B_`` (their ``len(items_)`` square weights).
    """

    def __init__(self, lam: float = 500.0, gamma: float = 0.0, max_items: int | None = None, binary: bool = True):
        self.lam, self.gamma, self.max_items, self.binary = lam, gamma, max_items, binary

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        X = as_csr(X, binary=self.binary)
        self.n_items_ = X.shape[1]
        self.items_ = items = modelled_items(X, self.max_items)
        Xs = X[:, items]
        if self.gamma:
            n_u = np.maximum(np.diff(Xs.indptr), 1).astype(np.float32)
            Xs = sp.diags(n_u ** (-self.gamma / 2)) @ Xs
        G = (Xs.T @ Xs).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += self.lam
        P = scipy.linalg.inv(G, overwrite_a=True, check_finite=False)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.B_ = B.astype(np.float32)
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        return item_item_scores(self, userids, X)


def modelled_items(X: sp.csr_matrix, max_items: int | None) -> np.ndarray:
    """The items an item-item model fits, ascending: every item with an interaction, or, when there are more than
    ``max_items``, the ``max_items`` most frequent (ties by index)."""
    counts = np.diff(X.tocsc().indptr)
    items = np.nonzero(counts)[0]
    if max_items is not None and len(items) > max_items:
        items = np.sort(np.argsort(-counts, kind="stable")[:max_items])
    return items


def item_item_scores(model: Any, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
    """Scores of an item-item model (``B_`` over its kept ``items_``, ``n_items_``, ``binary``): each user's
    history times ``B_``; items the model dropped score ``-inf``. Shared by EASE and DLAE."""
    rows = as_csr(X[np.atleast_1d(userids)], binary=model.binary)[:, model.items_]
    out = np.full((rows.shape[0], model.n_items_), -np.inf, dtype=np.float32)
    out[:, model.items_] = rows @ model.B_
    return out
