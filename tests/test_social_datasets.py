"""Trust-network loaders, the social-* protocols' splits, and TrustWalk on tiny constructed graphs."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from glassfeed.evaluate import datasets
from glassfeed.evaluate.protocols import PROTOCOLS, SOCIAL_KCORE, build_social, social_frame
from glassfeed.retrieval import MODELS, TrustWalk

# --- loaders, on small files written in each dataset's own format -------------------------------------------


def write_filmtrust(root: Path) -> None:
    (root / "filmtrust").mkdir(parents=True)
    (root / "filmtrust/ratings.txt").write_text("1 10 2\n1 11 3.5\n2 10 4\n")
    (root / "filmtrust/trust.txt").write_text("1 2 1\n2 1 1\n")


def test_load_trust_reads_each_format(tmp_path: Path) -> None:
    write_filmtrust(tmp_path)
    ratings, trust = datasets.load_trust("filmtrust", tmp_path)
    assert ratings.to_dict("list") == {"user": [1, 1, 2], "item": [10, 11, 10], "rating": [2.0, 3.5, 4.0]}
    assert trust.to_dict("list") == {"user": [1, 2], "friend": [2, 1]}

    (tmp_path / "ciaodvd").mkdir()
    (tmp_path / "ciaodvd/movie-ratings.txt").write_text("1,5,1,1,4,2000-07-12\n2,5,1,2,5,2001-01-01")
    (tmp_path / "ciaodvd/trusts.txt").write_text("2,1,1")
    ratings, trust = datasets.load_trust("ciaodvd", tmp_path)
    assert ratings.to_dict("list") == {"user": [1, 2], "item": [5, 5], "rating": [4, 5]}
    assert trust.to_dict("list") == {"user": [2], "friend": [1]}

    (tmp_path / "epinions-ciao-tang/ciao").mkdir(parents=True)
    (tmp_path / "epinions-ciao-tang/ciao/rating.tsv").write_text(
        "userid\tproductid\tcategoryid\trating\thelpfulness\n3\t7\t1\t5\t2\n"
    )
    (tmp_path / "epinions-ciao-tang/ciao/trustnetwork.tsv").write_text("truster\ttrustee\n3\t4\n")
    ratings, trust = datasets.load_trust("ciao", tmp_path)
    assert ratings.to_dict("list") == {"user": [3], "item": [7], "rating": [5]}
    assert trust.to_dict("list") == {"user": [3], "friend": [4]}


def test_load_trust_refuses_unknown_and_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        datasets.load_trust("ml-100k", tmp_path)
    with pytest.raises(datasets.DatasetMissing):
        datasets.load_trust("epinions", tmp_path)


# --- the protocol's split, on a synthetic trust dataset ------------------------------------------------------


def write_synthetic_filmtrust(root: Path, seed: int = 0) -> None:
    """60 users x 40 items, each user 2-15 ratings (a few duplicated), a random directed trust graph."""
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(1, 61) for i in rng.choice(40, size=rng.integers(2, 16), replace=False)]
    lines = [f"{u} {i + 100} 3\n" for u, i in rows] + [f"{u} {i + 100} 4\n" for u, i in rows[:5]]
    (root / "filmtrust").mkdir(parents=True)
    (root / "filmtrust/ratings.txt").write_text("".join(lines))  # 5 pairs rated twice: one interaction each
    links = {(int(a), int(b)) for a, b in rng.integers(1, 70, size=(150, 2))}  # users 61-69 never rated
    (root / "filmtrust/trust.txt").write_text("".join(f"{a} {b} 1\n" for a, b in sorted(links)))


def test_social_split_parts_are_disjoint_cover_the_frame_and_are_seed_stable(tmp_path: Path) -> None:
    write_synthetic_filmtrust(tmp_path)
    df, trust = social_frame("filmtrust", tmp_path)
    assert not df.duplicated(["user", "item"]).any()
    assert (df["rating"] == 4).sum() == 5  # a duplicated pair keeps its highest rating
    assert set(trust["user"]) | set(trust["friend"]) <= set(df["user"])  # no link to a user outside the frame
    assert not (trust["user"] == trust["friend"]).any()
    s = build_social("filmtrust", tmp_path)
    tr, va, te = (X.astype(bool).astype(np.int8) for X in (s.train, s.tune_valid, s.test))
    assert (tr.multiply(va)).nnz == 0 and (tr.multiply(te)).nnz == 0 and (va.multiply(te)).nnz == 0
    assert tr.nnz + va.nnz + te.nnz == len(df)
    assert s.tune_train is s.train and (s.exclude != (s.train + s.tune_valid)).nnz == 0
    assert s.social is not None and s.social.nnz == len(trust)
    again = build_social("filmtrust", tmp_path)
    assert (again.test != s.test).nnz == 0 and (again.train != s.train).nnz == 0
    other = build_social("filmtrust", tmp_path, seed=7)
    assert (other.test != s.test).nnz > 0  # the seed matters
    # per user roughly 8:1:1: every user with >= 10 interactions has exactly one valid and one test item or more
    n = np.diff((s.train + s.tune_valid + s.test).tocsr().indptr)
    big = n >= 10
    assert (np.diff(s.test.indptr)[big] >= 1).all() and (np.diff(s.tune_valid.indptr)[big] >= 1).all()


def test_social_protocols_are_registered_with_their_models() -> None:
    for name in SOCIAL_KCORE:
        proto = PROTOCOLS[f"social-{name}"]
        assert proto.dataset == name and proto.dataset in datasets.DATASETS
        for model in proto.models:
            assert all(part in MODELS for part in model.split("+"))
    assert PROTOCOLS["social-lastfm"].published  # RecBole-GNN's table; the trust datasets have none


@pytest.mark.skipif(not datasets.available("filmtrust"), reason="FilmTrust not under the data directory")
def test_real_filmtrust_shape() -> None:
    ratings, trust = datasets.load_trust("filmtrust")
    assert (len(ratings), len(trust)) == (35_497, 1_853)  # the published counts
    s = PROTOCOLS["social-filmtrust"].build(None)
    assert s.stats["users"] == 1_398 and s.stats["items"] == 1_418  # its 2-core


# --- TrustWalk -------------------------------------------------------------------------------------------------


def tiny() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """5 users x 6 items. User 0 trusts user 1 only; user 1 trusts user 2; item 5 is the most popular."""
    X = sp.csr_matrix(
        np.array(
            [
                [1, 0, 0, 0, 0, 0],
                [1, 0, 1, 0, 0, 0],  # the trusted user liked item 2
                [0, 0, 0, 1, 0, 0],  # two hops away: item 3
                [0, 0, 0, 0, 1, 1],
                [0, 1, 0, 0, 0, 1],
            ],
            dtype=np.float32,
        )
    )
    T = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 2])), shape=(5, 5), dtype=np.float32)
    return X, T


def test_trustwalk_ranks_the_trusted_users_item_first_then_two_hops() -> None:
    X, T = tiny()
    model = TrustWalk(alpha=0.3, depth=2, mix=0.0).fit(X, social=T)  # stops: u0 0.7, u1 0.21, u2 0.09
    ids, _ = model.recommend(0, X, N=3)
    assert ids[0].tolist()[:2] == [2, 3]  # the friend's item, then the friend-of-friend's
    assert ids[0, 2] == 5  # then popularity (the tie-break)
    one_hop = TrustWalk(alpha=0.3, depth=1, mix=0.0).fit(X, social=T)
    assert one_hop.score(0, X)[0, 3] < 1e-5  # depth 1 never reaches user 2


def test_trustwalk_stop_weights_are_a_distribution() -> None:
    X, T = tiny()
    model = TrustWalk(alpha=0.6, depth=3, mix=0.5).fit(X, social=T)
    W = model.user_weights(np.arange(5)).toarray()
    assert np.allclose(W.sum(axis=1), 1.0)
    assert np.allclose(W[0], [0.4, 0.6 * 0.4, 0.36, 0, 0])  # u0 -> u1 -> u2, who trusts nobody and stays
    assert np.allclose(W[3], [0, 0, 0, 1, 0])  # trusts nobody: the walker stays home
    assert model.score(np.arange(5), X).shape == (5, 6)


def test_trustwalk_without_trust_is_item_cooccurrence_and_checks_its_inputs() -> None:
    X, T = tiny()
    model = TrustWalk(alpha=0.0, mix=1.0, beta=0.0).fit(X, social=T)
    ids, _ = model.recommend(3, X, N=1)
    assert ids[0, 0] == 1  # item 5 co-occurs with item 1 (user 4), nothing else does
    with pytest.raises(ValueError):
        TrustWalk().fit(X)
    with pytest.raises(ValueError):
        TrustWalk().fit(X, social=sp.csr_matrix((3, 3)))
    with pytest.raises(ValueError):
        TrustWalk(alpha=1.0).fit(X, social=T)


def test_trustwalk_runs_through_the_grid_search_with_the_social_graph() -> None:
    from glassfeed.evaluate.tuning import grid_search

    X, T = tiny()
    valid = sp.csr_matrix(([1.0], ([0], [2])), shape=X.shape)
    best = grid_search(
        TrustWalk, {"alpha": [0.0, 0.3], "depth": [1], "mix": [0.0]}, X, valid, k=1, metric="ndcg@1", social=T
    )
    assert best.best_params["alpha"] == 0.3 and best.best_score == 1.0


def test_pipeline_import_matches_the_split_and_follows_each_trust_link_one_way(tmp_path: Path) -> None:
    from glassfeed.evaluate.pipeline_eval import social_event_frames

    write_synthetic_filmtrust(tmp_path)
    s = build_social("filmtrust", tmp_path)
    frames = social_event_frames("filmtrust", tmp_path)
    tr = frames.train
    got = sp.csr_matrix((np.ones(len(tr)), (tr["u"], tr["i"])), shape=s.train.shape)
    assert (got != s.train).nnz == 0  # the same training pairs as the retrieval models see
    assert sorted(tr["rating"].unique().tolist()) == [3.75, 5.0]  # FilmTrust's 3 and 4 stars, x 1.25
    assert frames.friends is not None
    follows = sp.csr_matrix((np.ones(len(frames.friends)), frames.friends.T), shape=s.social.shape)
    assert (follows != s.social).nnz == 0  # directed: u -> v only where u trusts v
    valid = sp.csr_matrix((np.ones(len(frames.masked)), (frames.masked["u"], frames.masked["i"])), shape=s.train.shape)
    assert (valid != s.tune_valid).nnz == 0  # validation items are masked at ranking time
