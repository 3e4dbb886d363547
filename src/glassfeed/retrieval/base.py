"""The fit / score / recommend contract every retrieval model shares, and the top-k helper.

Models follow scikit-learn's conventions: ``Model(**hyperparams)`` only stores its hyper-parameters,
``fit(X)`` learns from ``X`` (a CSR users x items matrix of implicit confidence weights) and returns the model,
and what ``fit`` learns is stored in attributes ending in ``_`` (``n_items_``, ``user_factors_``, ...).

``recommend(userids, X, N)`` keeps ``implicit``'s argument names and return shape (ids and scores, both
``(len(userids), N)``, best first) but NOT its input shape: ``implicit`` takes only the requested users' rows,
while here ``X`` is always the full users x items history (row ``u`` is user ``u``). The social model scores a
user from the rows of the user's friends, which the requesting users' rows alone do not hold. Subclasses
implement ``fit`` and ``score``; filtering and top-k selection live here once.
"""

from __future__ import annotations

import inspect
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

#: Rows scored at once by ``recommend``; bounds memory at ``batch_size * n_items`` floats.
BATCH_SIZE = 1024


def as_csr(X: Any, binary: bool = False) -> sp.csr_matrix:
    """A float32 CSR copy of ``X`` with sorted indices (never a view: callers may change it freely);
    with ``binary`` every stored entry becomes 1."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    X.sum_duplicates()
    X.sort_indices()
    if binary:
        X.data[:] = 1.0
    return X


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row, best first; ties go to the lower column index, deterministically.

    ``-inf`` marks an excluded item: rows with fewer than ``k`` finite scores are padded with id ``-1``
    and score ``-inf``, as are all rows when ``k`` exceeds the number of columns.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    kk = min(k, m)
    if kk <= 0:
        return np.full((n, k), -1, dtype=np.int64), np.full((n, k), -np.inf, dtype=np.float32)
    if kk < m:
        # The kk-th best value per row, then everything strictly better plus the lowest-indexed ties.
        kth = -np.partition(-scores, kk - 1, axis=1)[:, kk - 1]
        above = scores > kth[:, None]
        tie = scores == kth[:, None]
        need = kk - above.sum(axis=1)
        chosen = above | (tie & (np.cumsum(tie, axis=1) <= need[:, None]))
        ids = np.nonzero(chosen)[1].reshape(n, kk)  # ascending column order within each row
    else:
        ids = np.broadcast_to(np.arange(m), (n, m)).copy()
    vals = np.take_along_axis(scores, ids, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: equal scores keep ascending ids
    ids = np.take_along_axis(ids, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    ids[~np.isfinite(vals)] = -1
    vals[ids < 0] = -np.inf
    if kk < k:
        ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return ids, vals


def mask_scores(scores: np.ndarray, exclude: sp.csr_matrix | None, filter_items: np.ndarray | None = None) -> None:
    """Set to ``-inf`` (in place) each row's stored entries of ``exclude`` and every ``filter_items`` column."""
    if exclude is not None and exclude.nnz:
        exclude = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    if filter_items is not None and len(filter_items):
        scores[:, np.asarray(filter_items, dtype=np.int64)] = -np.inf


class Recommender:
    """Base class: subclasses set ``n_items_`` in ``fit`` and implement ``score``."""

    #: Number of items (columns of ``X``) seen by ``fit``.
    n_items_: int = 0
    #: True for models whose ``fit`` needs the user-user ``social`` graph (see ``SocialRecommender``).
    needs_social: bool = False

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:  # pragma: no cover - interface
        """Learn from ``X``; ``social`` (users x users) is read only by models with ``needs_social`` and ignored by
        the others, like scikit-learn's ``y=None``."""
        raise NotImplementedError

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:  # pragma: no cover
        """Dense ``(len(userids), n_items_)`` float32 scores; ``X`` is the full user x item history."""
        raise NotImplementedError

    def recommend(
        self,
        userids: np.ndarray | int,
        X: sp.csr_matrix,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``N`` item ids and scores per user, both shaped ``(len(userids), N)`` (``(1, N)`` for an int).

        ``X`` is the full users x items history (row ``u`` is user ``u``); with ``filter_already_liked_items``
        the items in a user's row are never returned. Missing slots hold id ``-1`` and score ``-inf``.
        """
        users = np.atleast_1d(np.asarray(userids, dtype=np.int64))
        X = sp.csr_matrix(X)  # no copy when it already is CSR: models only read the rows they score
        ids = np.empty((len(users), N), dtype=np.int64)
        vals = np.empty((len(users), N), dtype=np.float32)
        for start in range(0, len(users), BATCH_SIZE):
            batch = users[start : start + BATCH_SIZE]
            scores = self.score(batch, X)
            mask_scores(scores, X[batch] if filter_already_liked_items else None, filter_items)
            ids[start : start + len(batch)], vals[start : start + len(batch)] = topk(scores, N)
        return ids, vals

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (each stored as an attribute of the same name), for reports and ``repr``."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def row_normalize(X: sp.csr_matrix, power: float = 1.0) -> sp.csr_matrix:
    """Rows divided by their sum (an L1 transition matrix), then raised elementwise to ``power``."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    sums = np.asarray(X.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    X.data /= np.repeat(sums, np.diff(X.indptr)).astype(np.float32)
    if power != 1.0:
        X.data **= power
    return X


def topk_per_row_sparse(S: sp.spmatrix, K: int) -> sp.csr_matrix:
    """Keep each row's ``K`` largest positive entries of the sparse ``S`` (ties to the lower column)."""
    S = sp.csr_matrix(S, dtype=np.float32, copy=True)
    S.data[S.data <= 0] = 0.0
    S.eliminate_zeros()
    S.sort_indices()
    keep = np.zeros(S.nnz, dtype=bool)
    for r in np.flatnonzero(np.diff(S.indptr) > K):  # rows already within K keep everything
        lo, hi = S.indptr[r], S.indptr[r + 1]
        keep[lo + np.argsort(-S.data[lo:hi], kind="stable")[:K]] = True
    short = np.repeat(np.diff(S.indptr) <= K, np.diff(S.indptr))
    S.data[~(keep | short)] = 0.0
    S.eliminate_zeros()
    return S
