"""Retrieval models: the shared recommend contract, each model's defining property, the ANN index."""

import numpy as np
import pytest
import scipy.sparse as sp

from glassfeed.retrieval import (
    ALS,
    BPR,
    EASE,
    MODELS,
    ANNIndex,
    Blend,
    ItemKNN,
    Popularity,
    RP3beta,
    SocialRecommender,
)
from glassfeed.retrieval.blend import standardize_rows


def two_blocks(n_users: int = 40, n_items: int = 20, seed: int = 0) -> sp.csr_matrix:
    """Users 0..n/2-1 like items of the first half, the others the second half (70% of their block each)."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        block = np.arange(n_items // 2) + (0 if u < n_users // 2 else n_items // 2)
        chosen = rng.choice(block, size=int(0.7 * len(block)), replace=False)
        rows += [u] * len(chosen)
        cols += chosen.tolist()
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


FAST = {
    "pop": {},
    "itemknn": {"K": 10},
    "als": {"factors": 4, "iterations": 10},
    "bpr": {"factors": 8, "iterations": 200, "learning_rate": 0.05},
    "ease": {"lam": 10.0},
    "dlae": {"lam": 10.0, "p": 0.2},
    "ials": {"factors": 4, "reg": 0.01, "iterations": 8},
    "rp3beta": {"K": 10},
    "gfcf": {"k": 4},
    "blend": {},
}


@pytest.mark.parametrize("name", sorted(n for n in MODELS if not getattr(MODELS[n], "needs_social", False)))
def test_every_model_follows_the_recommend_contract(name):
    X = two_blocks()
    model = MODELS[name](**FAST[name]).fit(X)
    ids, scores = model.recommend(np.arange(5), X, N=4)
    assert ids.shape == scores.shape == (5, 4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    for u in range(5):
        assert not set(ids[u]) & set(X[u].indices)  # already-liked items are filtered
    one, _ = model.recommend(3, X, N=4)
    assert one.shape == (1, 4) and (one[0] == ids[3]).all()
    dense = model.score(np.array([0, 1]), X)
    assert dense.shape == (2, X.shape[1]) and dense.dtype == np.float32


@pytest.mark.parametrize("name", ["itemknn", "ease", "dlae", "rp3beta", "gfcf", "als", "ials", "bpr"])
def test_collaborative_models_recommend_from_the_users_own_block(name):
    X = two_blocks()
    model = MODELS[name](**FAST[name]).fit(X)
    ids, _ = model.recommend(np.arange(40), X, N=3)  # each user has 3 unseen items left in its block
    in_block = np.where(np.arange(40)[:, None] < 20, ids < 10, ids >= 10)
    assert in_block.mean() >= 0.9


def test_recommend_filters_items_and_pads_short_lists():
    X = two_blocks()
    model = Popularity().fit(X)
    ids, _ = model.recommend(0, X, N=5, filter_items=np.array([12, 13]))
    assert not {12, 13} & set(ids[0])
    ids, scores = model.recommend(0, X, N=30)  # 20 items, 7 already liked: 13 candidates
    assert (ids[0, :13] >= 0).all() and (ids[0, 13:] == -1).all() and np.isneginf(scores[0, 13:]).all()
    ids, _ = model.recommend(0, X, N=3, filter_already_liked_items=False)
    assert ids[0, 0] == int(np.argmax(np.diff(X.tocsc().indptr)))


def test_models_do_not_modify_the_callers_matrix():
    X = two_blocks()
    X.data[:] = np.arange(1, X.nnz + 1, dtype=np.float32)
    before = X.copy()
    for name in ("itemknn", "ease", "dlae", "rp3beta", "als", "ials", "bpr"):
        MODELS[name](**FAST[name]).fit(X).recommend(np.arange(3), X, N=2)
    assert (before != X).nnz == 0


def test_popularity_counts_users_or_weight():
    X = sp.csr_matrix(np.array([[1, 0, 5], [1, 1, 0], [1, 0, 0]], dtype=np.float32))
    assert Popularity().fit(X).item_scores_.tolist() == [3, 1, 1]
    assert Popularity(binary=False).fit(X).item_scores_.tolist() == [3, 1, 5]


def test_ease_solves_its_constrained_least_squares():
    X = two_blocks(30, 12, seed=3)
    lam = 5.0
    B = EASE(lam=lam).fit(X).B_.astype(np.float64)
    G = (X.T @ X).toarray()
    assert np.allclose(np.diag(B), 0)
    # KKT: (G + lam I) B - G is zero off the diagonal (the diagonal holds the constraint's multipliers)
    R = (G + lam * np.eye(len(G))) @ B - G
    assert np.abs(R - np.diag(np.diag(R))).max() < 1e-3


def test_ease_max_items_and_gamma():
    X = two_blocks()
    X = X.tolil()
    X[:, 19] = 0  # item 19 becomes the least popular
    X = X.tocsr()
    X.eliminate_zeros()
    model = EASE(lam=10.0, max_items=15).fit(X)
    assert len(model.items_) == 15 and 19 not in model.items_
    scores = model.score(np.arange(40), X)
    assert np.isneginf(scores[:, np.setdiff1d(np.arange(20), model.items_)]).all()
    assert not np.allclose(EASE(lam=10.0, gamma=1.0).fit(X).B_, EASE(lam=10.0).fit(X).B_)


def test_itemknn_is_shrunk_cosine_with_k_neighbours():
    X = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 0, 0]], dtype=np.float32))
    S = ItemKNN(K=5, shrink=0.0).fit(X).similarity_.toarray()
    # items 0 and 1 share 2 users; |x0| = sqrt(3), |x1| = sqrt(3)
    assert S[0, 1] == pytest.approx(2 / 3, rel=1e-5) and S[0, 0] == 0
    shrunk = ItemKNN(K=5, shrink=1.0).fit(X).similarity_.toarray()
    assert shrunk[0, 1] == pytest.approx(2 / (3 + 1), rel=1e-5)
    pruned = ItemKNN(K=1, shrink=0.0).fit(two_blocks()).similarity_
    assert (np.diff(pruned.tocsc().indptr) <= 1).all()  # each target item keeps at most K neighbours


def test_rp3beta_is_a_popularity_discounted_random_walk():
    X = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=np.float32))
    W = RP3beta(alpha=1.0, beta=0.0, K=10).fit(X).similarity_.toarray()
    P_ui = X.toarray() / X.toarray().sum(1, keepdims=True)
    P_iu = X.toarray().T / X.toarray().T.sum(1, keepdims=True)
    expected = P_iu @ P_ui
    np.fill_diagonal(expected, 0)
    assert np.allclose(W, expected, atol=1e-6)
    Wb = RP3beta(alpha=1.0, beta=1.0, K=10).fit(X).similarity_.toarray()
    pop = X.toarray().sum(0)
    assert np.allclose(Wb, expected / pop[None, :], atol=1e-6)


def test_factor_models_expose_numpy_factors_whose_product_is_the_score():
    X = two_blocks()
    for model in (ALS(factors=4, iterations=5).fit(X), BPR(factors=4, iterations=20).fit(X)):
        assert isinstance(model.user_factors_, np.ndarray) and isinstance(model.item_factors_, np.ndarray)
        assert model.user_factors_.shape[0] == 40 and model.item_factors_.shape[0] == 20
        assert np.allclose(model.score(np.arange(3), X), model.user_factors_[:3] @ model.item_factors_.T)


def test_bpr_pop_correction_adds_log_counts_to_the_item_bias():
    X = two_blocks().tolil()
    X[0, 1] = X[1, 2] = X[2, 3] = 0  # uneven popularity
    X = X.tocsr()
    X.eliminate_zeros()
    plain = BPR(factors=4, iterations=20, pop_correction=0.0).fit(X)
    corrected = BPR(factors=4, iterations=20, pop_correction=1.0).fit(X)
    counts = np.diff(X.tocsc().indptr)
    assert np.allclose(corrected.item_factors_[:, -1] - plain.item_factors_[:, -1], np.log(counts), atol=1e-5)
    assert np.allclose(corrected.item_factors_[:, :-1], plain.item_factors_[:, :-1])


def test_social_counts_friends_who_liked_an_item():
    X = sp.csr_matrix(np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 5], [0, 0, 1, 0]], dtype=np.float32))
    friends = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    model = SocialRecommender("count").fit(X, social=friends)
    assert np.round(model.score(0, X)[0]).tolist() == [2, 1, 0, 1]  # item 2 is liked by a non-friend only
    share = SocialRecommender("share").fit(X, social=friends).score(0, X)[0]
    assert share[3] == pytest.approx(5 / 6, abs=1e-5) and share[0] == pytest.approx(1 / 2 + 1 / 6, abs=1e-5)
    ids, _ = model.recommend(0, X, N=2)
    assert ids[0, 0] == 0
    with pytest.raises(ValueError):
        SocialRecommender().fit(X)


def test_blend_standardises_and_weights_members():
    z = standardize_rows(np.array([[1.0, 2.0, 3.0, -np.inf]], dtype=np.float32))
    assert z[0, :3].mean() == pytest.approx(0, abs=1e-6) and z[0, 3] == z[0, 0]
    X = two_blocks()
    ease, pop = EASE(lam=10.0).fit(X), Popularity().fit(X)
    alone = Blend.of([ease, pop], [1.0, 0.0]).recommend(np.arange(10), X, N=5)[0]
    assert (alone == ease.recommend(np.arange(10), X, N=5)[0]).all()
    fitted = Blend(members=[("ease", {"lam": 10.0}), ("pop", {})], weights=[1.0, 0.5]).fit(X)
    assert fitted.models_[0].lam == 10.0 and fitted.get_params()["weights"] == (1.0, 0.5)
    assert repr(EASE(lam=3.0)) == "EASE(lam=3.0, gamma=0.0, max_items=None, binary=True)"
    with pytest.raises(ValueError):
        Blend(members=[("nope", {})])


def test_ann_index_recall_against_exact_inner_product():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(3000, 32)).astype(np.float32)
    queries = rng.normal(size=(100, 32)).astype(np.float32)
    index = ANNIndex(dim=32, M=16, ef=100).fit(items, ids=np.arange(3000) + 7)
    ids, scores = index.query(queries, 10)
    exact = np.argsort(-(queries @ items.T), axis=1)[:, :10] + 7
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert recall >= 0.95
    assert np.allclose(scores[:, 0], np.einsum("ij,ij->i", queries, items[ids[:, 0] - 7]), atol=1e-4)
    few, few_scores = ANNIndex(dim=32).fit(items[:3]).query(queries[:2], 5)
    assert (few[:, 3:] == -1).all() and np.isneginf(few_scores[:, 3:]).all()
    with pytest.raises(ValueError):
        ANNIndex(dim=32).fit(items[:3], ids=np.array([1, 1, 2]))


class _Failing:
    """Stands in for an hnswlib index whose graph search cannot fill k results."""

    def set_ef(self, ef):
        pass

    def knn_query(self, *args, **kwargs):
        raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")


def test_ann_index_answers_exactly_when_hnswlib_cannot_fill_k():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(200, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    index = ANNIndex(dim=8).fit(items, ids=np.arange(200) * 3)
    index.index_ = _Failing()
    ids, scores = index.query(queries, 150)
    exact = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :150] * 3
    assert (ids == exact).all()
    assert np.allclose(scores, np.sort(queries @ items.T, axis=1)[:, ::-1][:, :150], atol=1e-5)


def test_ann_index_below_exact_threshold_builds_no_graph_and_is_exact():
    rng = np.random.default_rng(2)
    items = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    flat = ANNIndex(dim=16, exact_below=501).fit(items, ids=np.arange(500) + 10)
    assert flat.exact_ and flat.index_ is None
    ids, scores = flat.query(queries, 25)
    full = queries @ items.T
    exact = np.argsort(-full, axis=1, kind="stable")[:, :25] + 10
    assert (ids == exact).all()
    assert np.allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :25], atol=1e-5)
    graph = ANNIndex(dim=16, exact_below=500).fit(items)  # at the threshold: HNSW
    assert not graph.exact_ and graph.index_ is not None
    wide, _ = flat.query(queries[:1], 600)  # more than the index holds: padded
    assert (np.sort(wide[0, :500]) == np.arange(500) + 10).all() and (wide[0, 500:] == -1).all()
