"""Matrix-factorisation models wrapping ``implicit`` (CPU): ALS and BPR, with numpy factor matrices.

``user_factors_`` / ``item_factors_`` are plain numpy arrays whose inner product is the score, so the feed's
collaborative source can put ``item_factors_`` in an ``ANNIndex`` and query it with ``user_factors_``.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from glassfeed.retrieval.base import Recommender, as_csr


class _FactorModel(Recommender):
    random_state: int
    num_threads: int
    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def _fit_implicit(self, cls: type[Any], X: sp.csr_matrix, **params: Any) -> None:
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; a BLAS pool inside it only thrashes
            model = cls(random_state=self.random_state, num_threads=self.num_threads, **params)
            model.fit(X, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.n_items_ = X.shape[1]

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        return self.user_factors_[np.atleast_1d(userids)] @ self.item_factors_.T


class ALS(_FactorModel):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008): confidence 1 + alpha * x_ui, conjugate-gradient solver."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        binary: bool = False,
        random_state: int = 42,
        num_threads: int = 1,
    ):
        self.factors, self.regularization, self.alpha, self.iterations = factors, regularization, alpha, iterations
        self.binary, self.random_state, self.num_threads = binary, random_state, num_threads

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        X = as_csr(X, binary=self.binary)
        self._fit_implicit(
            AlternatingLeastSquares,
            X,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
        )
        return self


class BPR(_FactorModel):
    """Bayesian Personalised Ranking (Rendle et al. 2009) by SGD; ``implicit`` adds an item-bias column.

    ``implicit`` draws negative items in proportion to their popularity (benfred/implicit#255), which trains
    the popularity prior out of the scores; ``pop_correction`` puts ``c * log(count_i)`` back into the item-bias
    column (the "logQ" correction for a sampled softmax). It stays an inner product, so ANN search still works.
    """

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        pop_correction: float = 1.0,
        random_state: int = 42,
        num_threads: int = 1,
    ):
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations, self.pop_correction = iterations, pop_correction
        self.random_state, self.num_threads = random_state, num_threads

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        X = as_csr(X, binary=True)  # BPR only sees which items were interacted with
        self._fit_implicit(
            BayesianPersonalizedRanking,
            X,
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
        )
        if self.pop_correction:
            counts = np.maximum(np.diff(X.tocsc().indptr), 1).astype(np.float32)
            self.item_factors_[:, -1] += self.pop_correction * np.log(counts)
        return self
