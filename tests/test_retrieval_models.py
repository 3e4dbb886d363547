"""DLAE / EDLAE / RDLAE, iALS and GF-CF: their closed forms and optimality conditions, checked from first principles,
and that the evaluator's grids name models that accept them."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from glassfeed.evaluate.protocols import PROTOCOLS
from glassfeed.evaluate.tuning import param_grid
from glassfeed.retrieval import DLAE, EASE, GFCF, IALS, MODELS


def blocks(n_users: int = 30, n_items: int = 12, seed: int = 3) -> sp.csr_matrix:
    """Two user groups, each liking a random 70% of its own half of the items."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n_users, n_items), np.float32)
    half = n_items // 2
    for u in range(n_users):
        lo = 0 if u < n_users // 2 else half
        dense[u, lo + rng.choice(half, size=int(0.7 * half), replace=False)] = 1.0
    return sp.csr_matrix(dense)


def gram(X: sp.csr_matrix) -> np.ndarray:
    return (X.T @ X).toarray().astype(np.float64)


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_dlae_without_dropout_and_with_a_zero_diagonal_is_ease(gamma):
    X = blocks()
    dlae = DLAE(lam=7.0, p=0.0, xi=0.0, gamma=gamma).fit(X)
    ease = EASE(lam=7.0, gamma=gamma).fit(X)
    assert np.allclose(dlae.B_, ease.B_, atol=1e-5)
    assert np.allclose(dlae.score(np.arange(5), X), ease.score(np.arange(5), X), atol=1e-4)


def test_dlae_is_ridge_regression_with_a_popularity_scaled_penalty():
    X = blocks()
    G = gram(X)
    p, lam = 0.4, 2.0
    penalty = np.diag(p / (1 - p) * np.diag(G) + lam)
    expected = np.linalg.solve(G + penalty, G)
    assert np.allclose(DLAE(lam=lam, p=p, xi=1.0).fit(X).B_, expected, atol=1e-5)


def test_dlae_minimises_the_exact_expected_dropout_loss():
    """Steck (2020): with dropout probability p on the input (kept entries scaled by 1 / (1 - p)), the expected
    loss E ||X - Z B||^2 is minimised by DLAE's B. The expectation is enumerated exactly over every mask."""
    X = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 1, 1], [1, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float64)
    p = 0.3
    n_items = X.shape[1]
    EZZ = np.zeros((n_items, n_items))
    EZX = np.zeros((n_items, n_items))
    for keep in itertools.product([0, 1], repeat=n_items):
        mask = np.array(keep, dtype=np.float64)
        prob = np.prod(np.where(mask == 1, 1 - p, p))
        Z = X * mask / (1 - p)
        EZZ += prob * Z.T @ Z
        EZX += prob * Z.T @ X
    optimum = np.linalg.solve(EZZ, EZX)  # the zero of the expected loss's gradient
    assert np.allclose(DLAE(lam=0.0, p=p, xi=1.0).fit(sp.csr_matrix(X)).B_, optimum, atol=1e-5)


@pytest.mark.parametrize("xi", [0.0, 0.2, 0.5])
def test_relaxed_diagonal_meets_its_kkt_conditions(xi):
    """min ||X - XB||^2 + ||Lambda^1/2 B||^2 s.t. diag(B) <= xi: the gradient (G + Lambda) B - G vanishes off the
    diagonal, its diagonal is a multiplier mu <= 0 (in this sign convention), and mu is 0 where diag(B) < xi."""
    X = blocks()
    G = gram(X)
    p, lam = 0.3, 1.0
    B = DLAE(lam=lam, p=p, xi=xi).fit(X).B_.astype(np.float64)
    Lam = np.diag(p / (1 - p) * np.diag(G) + lam)
    R = (G + Lam) @ B - G
    assert np.abs(R - np.diag(np.diag(R))).max() < 1e-3
    d, mu = np.diag(B), np.diag(R)
    assert (d <= xi + 1e-5).all()
    assert (mu <= 1e-3).all()
    assert np.abs(mu[d < xi - 1e-4]).max(initial=0.0) < 1e-3


def test_dlae_rejects_out_of_range_parameters():
    X = blocks()
    for params in ({"p": 1.0}, {"p": -0.1}, {"xi": 1.5}, {"lam": -1.0}):
        with pytest.raises(ValueError):
            DLAE(**params).fit(X)


def test_dlae_completes_a_hand_made_pattern():
    """Items 0 and 1 always go together, as do 2 and 3: a user holding only 0 gets 1 first, one holding 2 gets 3."""
    rows = [[1, 1, 0, 0, 0], [1, 1, 0, 0, 1], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0]]
    history = np.array([*rows, [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=np.float32)
    X = sp.csr_matrix(history)
    for model in (DLAE(lam=1.0, p=0.2), DLAE(lam=1.0, p=0.2, xi=1.0), DLAE(lam=1.0, p=0.2, gamma=0.5)):
        ids, _ = model.fit(X).recommend(np.array([6, 7]), X, N=1)
        assert ids[:, 0].tolist() == [1, 3]


def test_gfcf_is_the_linear_filter_plus_the_ideal_low_pass_from_an_svd():
    """Shen et al. (2021), written out densely: R = D_U^-1/2 X D_I^-1/2, scores x R'R + alpha x D_I^-1/2 V V' D_I^1/2
    with V the top-k right singular vectors of R (from numpy's SVD, independent of the model's eigensolver)."""
    X = blocks(30, 12, seed=4)
    Xd = X.toarray().astype(np.float64)
    d_u, d_i = Xd.sum(axis=1), Xd.sum(axis=0)
    R = Xd / np.sqrt(d_u)[:, None] / np.sqrt(d_i)[None, :]
    V = np.linalg.svd(R)[2][:3].T
    users = np.arange(8)
    linear = Xd[users] @ R.T @ R
    ideal = (Xd[users] / np.sqrt(d_i)) @ V @ V.T * np.sqrt(d_i)
    assert np.allclose(GFCF(k=3, alpha=0.0).fit(X).score(users, X), linear, atol=1e-5)
    assert np.allclose(GFCF(k=3, alpha=0.7).fit(X).score(users, X), linear + 0.7 * ideal, atol=1e-5)


def test_gfcf_with_every_singular_vector_passes_the_history_through():
    """With k = n_items, V V' is the identity, so the ideal part gives back the user's own history; an item nobody
    has (degree 0, taken as 1) scores 0, not NaN."""
    X = blocks(30, 12, seed=4).tolil()
    X[:, 11] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    full = GFCF(k=12, alpha=1.0).fit(X)
    linear = GFCF(k=12, alpha=0.0).fit(X)
    ideal = full.score(np.arange(30), X) - linear.score(np.arange(30), X)
    assert np.isfinite(ideal).all()
    assert np.allclose(ideal[:, :11], X.toarray()[:, :11], atol=1e-4) and np.allclose(ideal[:, 11], 0, atol=1e-4)
    with pytest.raises(ValueError):
        GFCF(k=0).fit(X)


def ials_loss(model: IALS, X: sp.csr_matrix, W: np.ndarray, H: np.ndarray) -> float:
    """Rendle et al.'s objective, written out densely."""
    Y = np.asarray(X.toarray() > 0, dtype=np.float64)
    S = W.astype(np.float64) @ H.T.astype(np.float64)
    a0, n_users, n_items = model.unobserved_weight, *X.shape
    fit = ((S - 1.0) ** 2 * Y).sum() + a0 * (S**2).sum()
    user_pen = (Y.sum(axis=1) + a0 * n_items) ** model.nu
    item_pen = (Y.sum(axis=0) + a0 * n_users) ** model.nu
    return float(fit + model.reg * ((user_pen * (W**2).sum(1)).sum() + (item_pen * (H**2).sum(1)).sum()))


def test_ials_alternating_steps_never_increase_the_loss_and_end_at_a_minimum_in_h():
    X = blocks(40, 16, seed=1)
    losses = []
    for iterations in range(1, 6):
        model = IALS(factors=4, reg=0.05, unobserved_weight=0.2, iterations=iterations).fit(X)
        losses.append(ials_loss(model, X, model.user_factors_, model.item_factors_))
    assert all(b <= a * (1 + 1e-5) for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0]
    W, H = model.user_factors_, model.item_factors_
    base = ials_loss(model, X, W, H)
    rng = np.random.default_rng(0)
    for _ in range(5):  # the last half step solved H exactly: any small move of H costs
        assert ials_loss(model, X, W, H + 1e-2 * rng.standard_normal(H.shape)) > base


def test_ials_is_deterministic_and_recommends_within_the_users_block():
    X = blocks(40, 16, seed=1)
    a = IALS(factors=8, reg=0.01, unobserved_weight=0.1, iterations=8).fit(X)
    b = IALS(factors=8, reg=0.01, unobserved_weight=0.1, iterations=8).fit(X)
    assert np.array_equal(a.user_factors_, b.user_factors_) and np.array_equal(a.item_factors_, b.item_factors_)
    assert np.allclose(a.score(np.arange(3), X), a.user_factors_[:3] @ a.item_factors_.T)
    ids, _ = a.recommend(np.arange(40), X, N=2)
    in_block = np.where(np.arange(40)[:, None] < 20, ids < 8, ids >= 8)
    assert in_block.mean() >= 0.9


def test_every_protocol_grid_names_a_model_that_accepts_its_parameters():
    for protocol in PROTOCOLS.values():
        for name, grid in protocol.grids.items():
            if name == "+":
                assert all(w >= 0 for w in grid["weight"]) and 0.0 in grid["weight"]
                continue
            assert name in MODELS, f"{protocol.name}: grid for unknown model {name}"
            for params in param_grid(grid):
                model = MODELS[name](**params)
                assert {k: getattr(model, k) for k in params} == params
        for name in protocol.models:
            assert all(part in MODELS for part in name.split("+"))
