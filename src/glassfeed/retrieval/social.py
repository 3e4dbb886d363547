"""Social retrieval: recommend what a user's friends (or followees) liked."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr, row_normalize


class SocialRecommender(Recommender):
    """score(u, i) = sum over u's friends f of w_fi; ties (and friendless users) fall back to popularity.

    ``weighting="count"``: w_fi = 1 if f interacted with i, so the score counts friends who liked i.
    ``weighting="share"``: w_fi = f's share of its own total weight on i (e.g. of its plays), so every friend
    has one vote, split by how much they engaged. Learned: ``social_`` (the binary users x users graph) and
    ``tiebreak_`` (item popularity scaled to at most 1e-6, added so that ties go to the popular item).
    """

    needs_social = True

    def __init__(self, weighting: str = "count"):
        if weighting not in ("count", "share"):
            raise ValueError(f"weighting must be 'count' or 'share', not {weighting!r}")
        self.weighting = weighting

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        if social is None:
            raise ValueError("SocialRecommender.fit needs the users x users `social` graph")
        X = as_csr(X)
        if social.shape != (X.shape[0], X.shape[0]):
            raise ValueError(f"social graph is {social.shape}, expected {(X.shape[0], X.shape[0])}")
        self.social_ = as_csr(social, binary=True)
        pop = np.diff(X.tocsc().indptr).astype(np.float64)
        self.tiebreak_ = (1e-6 * pop / max(pop.max(), 1.0)).astype(np.float32)
        self.n_items_ = X.shape[1]
        return self

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        friends = self.social_[np.atleast_1d(userids)]
        cols = np.unique(friends.indices)  # only the friends' rows of X are read
        W = as_csr(sp.csr_matrix(X)[cols], binary=self.weighting == "count")
        if self.weighting == "share":
            W = row_normalize(W)
        return np.asarray((friends[:, cols] @ W).todense(), dtype=np.float32) + self.tiebreak_
