"""Blend: a weighted sum of several models' per-user standardised scores (e.g. EASE + RP3beta, CF + social)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

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

    ``fit`` fits one model per member into ``models_`` (e.g. for their factors); ``needs_social`` if any
    member does.
    """

    def __init__(
        self,
        members: Sequence[tuple[str, dict[str, Any]]] = (("ease", {}), ("rp3beta", {})),
        weights: Sequence[float] | None = None,
    ):
        self.members = tuple((name, dict(params)) for name, params in members)
        self.weights = tuple(weights) if weights is not None else tuple(1.0 for _ in self.members)
        if len(self.weights) != len(self.members):
            raise ValueError("Blend needs one weight per member")
        unknown = [name for name, _ in self.members if name not in _registry()]
        if unknown:
            raise ValueError(f"unknown Blend member(s): {', '.join(unknown)}")
        self.needs_social = any(m.needs_social for m in self._new_members())

    def _new_members(self) -> list[Recommender]:
        """Unfitted members (constructors only store parameters, so this is cheap)."""
        models = _registry()
        return [models[name](**params) for name, params in self.members]

    @classmethod
    def of(cls, models: Sequence[Recommender], weights: Sequence[float]) -> Blend:
        """A blend of already-fitted ``models`` (no refit), e.g. to try several weights cheaply."""
        if len(models) != len(weights):
            raise ValueError("Blend needs one weight per model")
        blend = cls.__new__(cls)
        blend.members = tuple((type(m).__name__, m.get_params()) for m in models)
        blend.weights = tuple(weights)
        blend.models_ = list(models)
        blend.needs_social = any(m.needs_social for m in models)
        blend.n_items_ = models[0].n_items_
        return blend

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        self.models_ = [model.fit(X, social=social) for model in self._new_members()]
        self.n_items_ = X.shape[1]
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        total: np.ndarray | None = None
        for weight, model in zip(self.weights, self.models_):
            if weight == 0:
                continue
            part = weight * standardize_rows(model.score(userids, X))
            total = part if total is None else total + part
        return total if total is not None else np.zeros((len(np.atleast_1d(userids)), self.n_items_), np.float32)


def _registry() -> dict[str, type[Recommender]]:
    """``glassfeed.retrieval.MODELS``, which lists ``Blend`` itself: imported on use, because a module-level
    import would be circular (the registry module imports this one)."""
    from glassfeed.retrieval import MODELS

    return MODELS
