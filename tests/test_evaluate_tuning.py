"""Model selection (``evaluate.tuning``): grid search sees validation data only; grids expand like scikit-learn's."""

import numpy as np
import scipy.sparse as sp

from glassfeed.evaluate.tuning import grid_search, param_grid
from glassfeed.retrieval import Recommender


class OneItem(Recommender):
    """Scores only ``item``: a model whose quality depends on one parameter in an obvious way."""

    def __init__(self, item: int = 0):
        self.item = item

    def fit(self, X, social=None):
        self.n_items_ = X.shape[1]
        return self

    def score(self, userids, X):
        out = np.zeros((len(np.atleast_1d(userids)), self.n_items_), np.float32)
        out[:, self.item] = 1.0
        return out


def test_grid_search_selects_on_validation_only():
    X = sp.random(40, 20, density=0.5, format="csr", dtype=np.float32, rng=np.random.default_rng(0))
    X.data[:] = 1.0
    valid = sp.csr_matrix((np.ones(40, np.float32), (np.arange(40), np.full(40, 5))), shape=X.shape)
    train = X.tolil()
    train[:, 5] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    result = grid_search(OneItem, {"item": [0, 5, 9, 5]}, train, valid, k=1, metric="ndcg@1")
    assert result.best_params == {"item": 5} and result.best_score == 1.0
    assert result.best_model.item == 5
    assert [t["params"]["item"] for t in result.trials] == [0, 5, 9, 5]  # every point tried, first best kept
    scores = [t["valid"]["ndcg@1"] for t in result.trials]
    assert scores[1] == scores[3] == 1.0 and max(scores[0], scores[2]) < 0.1


def test_param_grid_products_and_lists():
    assert param_grid({}) == [{}]
    assert param_grid({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert param_grid([{"a": [1]}, {"a": [2], "g": [0.5]}]) == [{"a": 1}, {"a": 2, "g": 0.5}]
