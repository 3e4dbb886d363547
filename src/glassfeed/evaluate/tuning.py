"""Model selection: scoring a fitted model against held-out interactions, and grid search that only ever sees
validation data. It lives with the evaluator (not in ``retrieval``) because it is built on ``evaluate.metrics``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from glassfeed.evaluate.metrics import evaluate_topk
from glassfeed.retrieval.base import BATCH_SIZE, Recommender, mask_scores, topk


def rank_users(
    model: Recommender,
    history: sp.csr_matrix,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    filter_items: np.ndarray | None = None,
) -> np.ndarray:
    """Top-``k`` item ids for ``users``: scored from ``history``, with ``exclude`` rows and ``filter_items`` masked."""
    recs = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), BATCH_SIZE):
        batch = users[start : start + BATCH_SIZE]
        scores = model.score(batch, history)
        mask_scores(scores, exclude[batch] if exclude is not None else None, filter_items)
        recs[start : start + len(batch)] = topk(scores, k)[0]
    return recs


def evaluate_model(
    model: Recommender,
    history: sp.csr_matrix,
    relevant: sp.csr_matrix,
    k: int = 10,
    exclude: sp.csr_matrix | None = None,
    filter_items: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` over every user with a relevant item (``exclude`` defaults to ``history``)."""
    users = np.flatnonzero(np.diff(sp.csr_matrix(relevant).indptr))
    recs = rank_users(model, history, users, k, history if exclude is None else exclude, filter_items)
    return evaluate_topk(recs, sp.csr_matrix(relevant)[users], k)


Grid = dict[str, list[Any]] | list[dict[str, list[Any]]]


def param_grid(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of ``grid``'s values, in order; a list of grids is their concatenation (as in
    scikit-learn's ParameterGrid); an empty grid is one point with no parameters."""
    if isinstance(grid, list):
        return [point for sub in grid for point in param_grid(sub)]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def fit_model(model: Recommender, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> float:
    """Fit ``model`` on ``X`` (passing ``social`` when it needs one); returns the wall-clock seconds."""
    t0 = time.perf_counter()
    if model.needs_social:
        model.fit(X, social=social)
    else:
        model.fit(X)
    return time.perf_counter() - t0


@dataclass
class GridResult:
    best_params: dict[str, Any]
    best_score: float
    best_model: Recommender
    best_fit_seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)  # params, validation metrics, fit seconds


def grid_search(
    cls: type[Recommender],
    grid: Grid,
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    k: int = 10,
    metric: str = "ndcg@10",
    exclude: sp.csr_matrix | None = None,
    filter_items: np.ndarray | None = None,
    social: sp.csr_matrix | None = None,
    fixed: dict[str, Any] | None = None,
    on_trial: Callable[[dict[str, Any], dict[str, float]], None] | None = None,
) -> GridResult:
    """Fit ``cls(**fixed, **params)`` on ``train`` for every grid point and keep the best by ``metric`` on ``valid``.

    It takes no test matrix, so selection cannot peek at test data; ties keep the earlier grid point.
    """
    best: GridResult | None = None
    trials: list[dict[str, Any]] = []
    for params in param_grid(grid):
        model = cls(**{**(fixed or {}), **params})
        seconds = fit_model(model, train, social)
        scores = evaluate_model(model, train, valid, k, exclude, filter_items)
        trials.append({"params": params, "valid": scores, "fit_seconds": seconds})
        if on_trial is not None:
            on_trial(params, scores)
        if best is None or scores[metric] > best.best_score:
            best = GridResult(params, scores[metric], model, seconds)
    assert best is not None
    best.trials = trials
    return best
