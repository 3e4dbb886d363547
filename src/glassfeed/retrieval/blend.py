"""Blend: a weighted sum of several models' per-user standardised scores (e.g. EASE + RP3beta, CF + social)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender


def standardize_rows(scores: np.ndarray) -> np.ndarray:
    """Each row to zero mean, unit variance over its finite entries; ``-inf`` becomes the row's minimum."""
    finite = np.isfinite(scores)
    n = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    x = np.where(finite, scores, 0.0).astype(np.float64)
    mean = x.sum(axis=1, keepdims=True) / n
    var = (np.where(finite, (x - mean) ** 2, 0.0)).sum(axis=1, keepdims=True) / n
    z = (x - mean) / np.sqrt(np.maximum(var, 1e-24))
    lowest = np.where(finite, z, np.inf).min(axis=1, keepdims=True)
    lowest[~np.isfinite(lowest)] = 0.0
    return np.where(finite, z, lowest).astype(np.float32)


class Blend(Recommender):
    """``members`` are ``(registry name, params)`` pairs; score = sum_m weight_m * standardize(score_m).

    Exposes the fitted members in ``models`` (e.g. for their factors); ``needs_social`` if any member does.
    """

    def __init__(self, members: Sequence[tuple[str, dict[str, Any]]] = (("ease", {}), ("rp3beta", {})),
                 weights: Sequence[float] | None = None):
        self.members = tuple((name, dict(params)) for name, params in members)
        self.weights = tuple(weights) if weights is not None else tuple(1.0 for _ in self.members)
        if len(self.weights) != len(self.members):
            raise ValueError("Blend needs one weight per member")
        from glassfeed.retrieval import MODELS  # the registry imports this module

        unknown = [name for name, _ in self.members if name not in MODELS]
        if unknown:
            raise ValueError(f"unknown Blend member(s): {', '.join(unknown)}")
        self.models = [MODELS[name](**params) for name, params in self.members]
        self.needs_social = any(m.needs_social for m in self.models)

    @classmethod
    def of(cls, models: Sequence[Recommender], weights: Sequence[float]) -> "Blend":
        """A blend of already-fitted ``models`` (no refit), e.g. to try several weights cheaply."""
        if len(models) != len(weights):
            raise ValueError("Blend needs one weight per model")
        blend = cls.__new__(cls)
        blend.members = tuple((type(m).__name__, m.get_params()) for m in models)
        blend.weights = tuple(weights)
        blend.models = list(models)
        blend.needs_social = any(m.needs_social for m in models)
        blend.n_items = models[0].n_items
        return blend

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> "Blend":
        for model in self.models:
            model.fit(X, social=social) if model.needs_social else model.fit(X)
        self.n_items = X.shape[1]
        return self

    def score(self, userids, X):
        total = None
        for weight, model in zip(self.weights, self.models):
            if weight == 0:
                continue
            part = weight * standardize_rows(model.score(userids, X))
            total = part if total is None else total + part
        return total if total is not None else np.zeros((len(np.atleast_1d(userids)), self.n_items), np.float32)
