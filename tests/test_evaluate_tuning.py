"""Model selection (``evaluate.tuning``): grid search sees validation data only; grids expand like scikit-learn's."""

import numpy as np
import scipy.sparse as sp

from glassfeed.evaluate.protocols import Protocol, Split
from glassfeed.evaluate.runner import ProtocolRun, _Tuned, n_steps
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


def test_a_three_member_blend_tries_each_pair_of_weights_and_keeps_the_best_on_validation():
    """``a+b+c`` weighs b and c independently (every pair from the ``"+"`` grid) and keeps the pair with the best
    validation score (ties keep the earlier pair)."""
    n_users, n_items = 30, 12
    X = sp.random(n_users, n_items, density=0.4, format="lil", dtype=np.float32, rng=np.random.default_rng(1))
    X[:, [0, 3, 7]] = 0.0  # nobody has the three items the members score, so nothing masks them
    X = X.tocsr()
    X.eliminate_zeros()
    X.data[:] = 1.0
    users = np.arange(n_users)
    valid = sp.csr_matrix((np.ones(n_users, np.float32), (users, np.full(n_users, 7))), X.shape)
    test = sp.csr_matrix((np.ones(n_users, np.float32), (users, np.full(n_users, 3))), X.shape)
    no_items = np.array([], np.int64)
    split = Split(X, test, (X + valid).tocsr(), X, valid, X, no_items, no_items)
    protocol = Protocol(
        "toy", "toy", lambda root: split, 10, ("ndcg@10",), (), {"+": {"weight": [0.0, 1.0, 2.0]}}, {}, "", ""
    )
    run = ProtocolRun(protocol, split)
    for name, item in (("first", 0), ("three", 3), ("seven", 7)):  # pre-tuned members, fitted on train
        run.tuned[name] = _Tuned({}, 0.0, OneItem(item).fit(X), OneItem(item).fit(X), [0.0], [])
    result = run.evaluate("first+three+seven")
    assert [tuple(t["params"]["weights"]) for t in result.trials] == [
        (1.0, a, b) for a in (0.0, 1.0, 2.0) for b in (0.0, 1.0, 2.0)
    ]
    # item 7 is the validation item: (0, 1) ties it with item 0 (the lower id first), (0, 2) is the first to rank it
    # first; the test item, 3, is not first under that choice (item 0 is)
    scores = {tuple(t["params"]["weights"]): t["valid"]["ndcg@10"] for t in result.trials}
    assert scores[(1.0, 0.0, 1.0)] < 1.0 and scores[(1.0, 0.0, 2.0)] == scores[(1.0, 1.0, 2.0)] == 1.0
    assert result.params["weights"] == [1.0, 0.0, 2.0] and result.valid_score == 1.0
    assert result.metrics["ndcg@10"] < 1.0
    assert n_steps(protocol, "first+three+seven") == 10 and n_steps(protocol, "first+three") == 4
