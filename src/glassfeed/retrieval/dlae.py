"""DLAE / EDLAE (Steck 2020) and their relaxed-diagonal form (Moon et al. 2023): closed-form linear autoencoders.

Steck, "Autoencoders that don't overfit towards the identity" (NeurIPS 2020): training a full-rank linear
autoencoder with dropout probability ``p`` on its input is, in expectation, ridge regression with the
item-specific penalty ``Lambda = p / (1 - p) * diag(G) + lam`` (``G = X'X``), so popular items are penalised
more. With ``P = (G + Lambda)^-1`` every variant here is ``B = I - P dMat(v)`` for a per-item vector ``v``:

- DLAE (plain dropout): ``v = diag(Lambda)``, i.e. ``B = (G + Lambda)^-1 G``;
- EDLAE (dropout with full emphasis on the dropped entries): the diagonal of ``B`` is forced to zero,
  ``v = 1 / diag(P)``; with ``p = 0`` this is exactly EASE;
- RDLAE (Moon, Kim, Lee, "It's Enough: Relaxing Diagonal Constraints in Linear Autoencoders for
  Recommendation", SIGIR 2023): ``diag(B) <= xi``; the KKT conditions give ``v = max(diag(Lambda), (1 - xi) /
  diag(P))``, so ``xi = 0`` is EDLAE and ``xi = 1`` is DLAE.

The diagonal of ``B`` only scores items a user already has (which ``recommend`` filters out), but ``v`` also
scales each column, so the variants rank unseen items differently.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr
from glassfeed.retrieval.ease import item_item_scores, modelled_items


def item_gram(X: sp.csr_matrix, items: np.ndarray, gamma: float = 0.0) -> np.ndarray:
    """Dense float64 ``X'X`` over the ``items`` columns; ``gamma`` > 0 weights user ``u``'s row by
    ``n_u^(-gamma/2)`` first (so ``G`` counts each user's co-occurrences with weight ``n_u^-gamma``)."""
    Xs = X[:, items]
    if gamma:
        n_u = np.maximum(np.diff(Xs.indptr), 1).astype(np.float64)
        Xs = sp.diags(n_u ** (-gamma / 2)) @ Xs
    return np.asarray((Xs.T @ Xs).toarray(), dtype=np.float64)


class DLAE(Recommender):
    """Denoising linear autoencoder, solved exactly: ``p`` dropout, ``lam`` constant L2, ``xi`` diagonal bound.

    ``xi = 0`` (the default) is EDLAE, ``xi = 1`` is DLAE, values between are RDLAE; ``p = 0, xi = 0`` is EASE
    with penalty ``lam``. ``gamma`` and ``max_items`` work as in ``EASE``: user-degree weighting of the Gram
    matrix, and only the ``max_items`` most popular items modelled (the rest score ``-inf``).

    Learned: ``items_`` (the modelled item columns, ascending) and ``B_`` (their square weight matrix,
    diagonal included).
    """

    def __init__(
        self,
        lam: float = 10.0,
        p: float = 0.25,
        xi: float = 0.0,
        gamma: float = 0.0,
        max_items: int | None = None,
        binary: bool = True,
    ):
        self.lam, self.p, self.xi, self.gamma, self.max_items, self.binary = lam, p, xi, gamma, max_items, binary

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {self.p}")
        if not 0.0 <= self.xi <= 1.0:
            raise ValueError(f"xi must be in [0, 1], got {self.xi}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        X = as_csr(X, binary=self.binary)
        self.n_items_ = X.shape[1]
        self.items_ = items = modelled_items(X, self.max_items)
        G = item_gram(X, items, self.gamma)
        penalty = self.p / (1.0 - self.p) * np.diag(G) + self.lam
        G[np.diag_indices_from(G)] += penalty
        P = scipy.linalg.inv(G, overwrite_a=True, check_finite=False)
        v = np.maximum(penalty, (1.0 - self.xi) / np.diag(P))
        B = P * -v[None, :]
        B[np.diag_indices_from(B)] += 1.0
        self.B_ = B.astype(np.float32)
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        return item_item_scores(self, userids, X)
