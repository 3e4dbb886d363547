"""TrustWalk: a random walk with restart over the trust graph, then through item co-occurrence.

In the spirit of TrustWalker (Jamali and Ester, KDD 2009): to score items for user ``u`` a walker starts at
``u``; at each step it follows one of the current user's trust links (chosen uniformly) with probability
``alpha`` and stops otherwise, for at most ``depth`` links. Where it stops it picks one of that user's items
(uniformly), and then, with probability ``mix``, takes one more item -> user -> item co-occurrence step
(RP3beta's popularity-discounted transition). The score of item ``i`` is the probability that the walk ends on
``i``: with ``T`` the row-normalised trust graph, ``X`` the row-normalised history and ``W`` the item step,

    score(u) = (sum_{t=0..depth} (1 - alpha) alpha^t e_u T^t) X ((1 - mix) I + mix W)

(the mass still walking after ``depth`` links stops at the last user). ``alpha = 0`` is RP3beta on the user's
own history (scaled); ``mix = 0`` and ``alpha`` near 1 is "what the people you trust liked", weighted by hops.
Users who trust nobody keep the walker at home. It is deterministic and needs no training beyond ``W``.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from glassfeed.retrieval.base import Recommender, as_csr, row_normalize
from glassfeed.retrieval.rp3beta import RP3beta


class TrustWalk(Recommender):
    """Trust-propagation recommender (see the module docstring); ``social`` rows are whom each user trusts.

    Hyper-parameters: ``alpha`` (probability of following a trust link at each step), ``depth`` (most links
    followed), ``mix`` (probability of the final item co-occurrence step), ``beta`` and ``K`` (that step's
    popularity discount and neighbours per item, as in ``RP3beta``).

    Learned: ``trust_`` (the row-normalised users x users trust graph; a user who trusts nobody has an empty row),
    ``item_step_`` (the sparse items x items ``W``, absent when ``mix == 0``) and ``tiebreak_`` (item popularity
    scaled to at most 1e-6, so that ties and empty walks go to the popular item).
    """

    needs_social = True

    def __init__(self, alpha: float = 0.5, depth: int = 2, mix: float = 0.5, beta: float = 0.5, K: int = 100):
        self.alpha, self.depth, self.mix, self.beta, self.K = alpha, depth, mix, beta, K

    def fit(self, X: sp.csr_matrix, social: sp.csr_matrix | None = None) -> Self:
        if social is None:
            raise ValueError("TrustWalk.fit needs the users x users `social` (trust) graph")
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        X = as_csr(X, binary=True)
        if social.shape != (X.shape[0], X.shape[0]):
            raise ValueError(f"social graph is {social.shape}, expected {(X.shape[0], X.shape[0])}")
        trust = as_csr(social, binary=True)
        trust.setdiag(0.0)
        trust.eliminate_zeros()
        self.trust_ = row_normalize(trust)
        self.item_step_ = RP3beta(alpha=1.0, beta=self.beta, K=self.K).fit(X).similarity_ if self.mix > 0 else None
        pop = np.diff(X.tocsc().indptr).astype(np.float64)
        self.tiebreak_ = (1e-6 * pop / max(pop.max(), 1.0)).astype(np.float32)
        self.n_items_ = X.shape[1]
        return self

    def user_weights(self, userids: np.ndarray | int) -> sp.csr_matrix:
        """Where walkers started at ``userids`` stop: a sparse ``(len(userids), n_users)`` matrix, rows sum to 1."""
        users = np.atleast_1d(np.asarray(userids, dtype=np.int64))
        n = self.trust_.shape[0]
        at = sp.csr_matrix((np.ones(len(users), np.float32), (np.arange(len(users)), users)), shape=(len(users), n))
        stopped = sp.csr_matrix((len(users), n), dtype=np.float32)
        dangling = sp.diags((np.diff(self.trust_.indptr) == 0).astype(np.float32))
        for _ in range(self.depth):
            # stop with probability 1 - alpha; a walker at a user who trusts nobody stops there for sure
            stopped = stopped + (1.0 - self.alpha) * at + self.alpha * (at @ dangling)
            at = (self.alpha * (at @ self.trust_)).tocsr()
        return (stopped + at).tocsr()

    def score(self, userids: np.ndarray | int, X: sp.csr_matrix) -> np.ndarray:
        weights = self.user_weights(userids)
        cols = np.unique(weights.indices)  # only the reached users' rows of X are read
        H = weights[:, cols] @ row_normalize(as_csr(sp.csr_matrix(X)[cols], binary=True))
        H = np.asarray(H.todense(), dtype=np.float32)  # walks reach most items: dense x sparse is far faster
        if self.item_step_ is not None:
            H = (1.0 - self.mix) * H + self.mix * np.asarray(H @ self.item_step_, dtype=np.float32)
        return H + self.tiebreak_
