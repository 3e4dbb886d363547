"""Offline protocols: how each dataset is filtered and split, and what it is compared against.

- ``ms-ml100k``: MS Recommenders' MovieLens-100k benchmark (examples/06_benchmarks/movielens.ipynb).
- ``recbole-ml1m``: RecBole's general-recommendation benchmark on MovieLens-1M.
- ``lastfm-social``: HetRec Last.fm 2K with its friend graph, to measure "what your friends like".
- ``social-<dataset>``: one social-recommendation protocol for Last.fm 2K and the trust networks (Ciao,
  Epinions, CiaoDVD, FilmTrust): RecBole-GNN's social setting (every interaction implicit, per-user 8:1:1).

Every protocol yields a ``Split``: the matrices to fit and score on, what is relevant, what is masked, and a
separate tuning pair so hyper-parameters are chosen without ever looking at the test matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glassfeed.evaluate import datasets
from glassfeed.retrieval.base import as_csr


@dataclass
class Split:
    """One protocol's matrices over dense user / item indices (all users x items CSR, float32)."""

    train: sp.csr_matrix  # fit on it, and it is the history users are scored from
    test: sp.csr_matrix  # relevant items (every stored entry)
    exclude: sp.csr_matrix  # never recommended at test time (train, or train + valid)
    tune_train: sp.csr_matrix  # hyper-parameter search fits on this ...
    tune_valid: sp.csr_matrix  # ... and is scored against this; the test matrix plays no part
    tune_exclude: sp.csr_matrix
    filter_items: np.ndarray  # items with no training interaction (no model can know them)
    tune_filter_items: np.ndarray
    social: sp.csr_matrix | None = None  # users x users friend graph, when the dataset has one
    stats: dict[str, Any] = field(default_factory=dict)


# --- splitters ---------------------------------------------------------------------------------------------


def stratified_split(
    df: pd.DataFrame, ratio: float = 0.75, by: str = "item", seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MS Recommenders' ``python_stratified_split`` (min_rating=1), reproduced row for row.

    Draw ``np.random.seed(seed); np.random.rand(len(df))`` in the frame's row order, sort by (``by``, draw),
    rank within each group, and send a row to train when rank / group size <= ratio: so each group puts
    ``floor(ratio * n)`` rows in train (a group of one goes wholly to test).
    """
    draw = np.random.RandomState(seed).rand(len(df))
    keys = df[by].to_numpy()
    order = np.lexsort((draw, keys))
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes) + 1
    in_train = np.empty(len(df), dtype=bool)
    in_train[order] = rank / np.repeat(sizes, sizes) <= ratio
    return df[in_train], df[~in_train]


def kcore(df: pd.DataFrame, k: int = 10, user: str = "user", item: str = "item") -> pd.DataFrame:
    """Drop users and items with fewer than ``k`` interactions, repeatedly, until none is left (the k-core)."""
    while True:
        n = len(df)
        df = df[df[user].map(df[user].value_counts()) >= k]
        df = df[df[item].map(df[item].value_counts()) >= k]
        if len(df) == n:
            return df


def split_counts(n: np.ndarray, ratios: tuple[float, ...]) -> np.ndarray:
    """RecBole's ``_calcu_split_ids`` per group: each part after the first gets ``int(ratio * n)`` (bumped to 1
    when ``0 < ratio * n < 1`` while the first part keeps more than one), the first part the rest."""
    n = np.asarray(n, dtype=np.int64)
    total = sum(ratios)
    ratios = tuple(r / total for r in ratios)
    cnt = np.stack([np.floor(r * n).astype(np.int64) for r in ratios], axis=1)
    cnt[:, 0] = n - cnt[:, 1:].sum(axis=1)
    for i in range(1, len(ratios)):
        bump = (cnt[:, 0] > 1) & (ratios[-i] * n > 0) & (ratios[-i] * n < 1)
        cnt[bump, -i] += 1
        cnt[bump, 0] -= 1
    return cnt


def group_ratio_split(
    df: pd.DataFrame, ratios: tuple[float, ...], by: str = "user", seed: int = 2020
) -> list[pd.DataFrame]:
    """Shuffle, then cut each ``by`` group into consecutive parts of ``split_counts`` sizes (RecBole's RS + RO)."""
    perm = np.random.RandomState(seed).permutation(len(df))
    keys = df[by].to_numpy()[perm]
    order = perm[np.argsort(keys, kind="stable")]  # grouped, shuffled within each group
    sorted_keys = df[by].to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    bounds = np.cumsum(split_counts(sizes, ratios), axis=1)
    part = (rank[:, None] >= np.repeat(bounds, sizes, axis=0)).sum(axis=1)
    labels = np.empty(len(df), dtype=np.int64)
    labels[order] = part
    return [df[labels == i] for i in range(len(ratios))]


# --- matrices ----------------------------------------------------------------------------------------------


def to_csr(df: pd.DataFrame, users: pd.Index, items: pd.Index, value: str | None = None) -> sp.csr_matrix:
    """Rows of ``df`` as a users x items matrix over the given id indexes (``value`` column, or 1.0)."""
    rows = users.get_indexer(df["user"])
    cols = items.get_indexer(df["item"])
    data = np.ones(len(df), np.float32) if value is None else df[value].to_numpy(np.float32)
    X = sp.csr_matrix((data, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    X.sum_duplicates()
    X.sort_indices()
    return X


def _no_train_items(X: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(X.tocsc().indptr) == 0)


def _stats(df: pd.DataFrame, **parts: sp.csr_matrix) -> dict[str, Any]:
    out: dict[str, Any] = {
        "interactions": len(df),
        "users": int(df["user"].nunique()),
        "items": int(df["item"].nunique()),
    }
    out.update({f"{name}_interactions": int(X.nnz) for name, X in parts.items()})
    return out


# --- protocols ---------------------------------------------------------------------------------------------


def build_ms_ml100k(root: str | Path | None = None, seed: int = 42) -> Split:
    """Stratified 75/25 by item (their seed 42); all ratings are interactions; tuning re-splits train 75/25."""
    df = datasets.load_ml100k(root)
    train_df, test_df = stratified_split(df, ratio=0.75, by="item", seed=seed)
    inner_train, inner_valid = stratified_split(train_df, ratio=0.75, by="item", seed=seed + 1)
    users, items = pd.Index(np.sort(df["user"].unique())), pd.Index(np.sort(df["item"].unique()))
    train, test = to_csr(train_df, users, items), to_csr(test_df, users, items)
    tune_train, tune_valid = to_csr(inner_train, users, items), to_csr(inner_valid, users, items)
    return Split(
        train=train,
        test=test,
        exclude=train,
        tune_train=tune_train,
        tune_valid=tune_valid,
        tune_exclude=tune_train,
        filter_items=_no_train_items(train),
        tune_filter_items=_no_train_items(tune_train),
        stats=_stats(df, train=train, test=test),
    )


def recbole_ml1m_frame(root: str | Path | None = None) -> pd.DataFrame:
    """ML-1M after RecBole's ml-1m_general filtering: ratings >= 3, then the iterative 10-core."""
    df = datasets.load_ml1m(root)
    return kcore(df[df["rating"] >= 3], k=10)


def build_recbole_ml1m(root: str | Path | None = None, seed: int = 2020) -> Split:
    """Per-user random 8:1:1; fit on train, tune on valid (train masked), test with train + valid masked."""
    df = recbole_ml1m_frame(root)
    train_df, valid_df, test_df = group_ratio_split(df, (0.8, 0.1, 0.1), by="user", seed=seed)
    users, items = pd.Index(np.sort(df["user"].unique())), pd.Index(np.sort(df["item"].unique()))
    train, valid, test = (to_csr(part, users, items) for part in (train_df, valid_df, test_df))
    return _train_valid_test(train, valid, test, _stats(df, train=train, valid=valid, test=test))


def _train_valid_test(
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    test: sp.csr_matrix,
    stats: dict[str, Any],
    social: sp.csr_matrix | None = None,
) -> Split:
    """The 8:1:1 protocols' ``Split``: fit on train, tune on valid (train masked), test with train + valid masked."""
    no_train = _no_train_items(train)
    return Split(
        train=train,
        test=test,
        exclude=(train + valid).tocsr(),
        tune_train=train,
        tune_valid=valid,
        tune_exclude=train,
        filter_items=no_train,
        tune_filter_items=no_train,
        social=social,
        stats=stats,
    )


def build_lastfm_social(root: str | Path | None = None, seed: int = 42) -> Split:
    """Per-user random 80/20 of user-artist pairs; confidence log(1 + plays); tuning re-splits train 80/20."""
    plays, friends = datasets.load_lastfm(root)
    plays = plays.assign(conf=np.log1p(plays["plays"].to_numpy(np.float64)))
    train_df, test_df = group_ratio_split(plays, (0.8, 0.2), by="user", seed=seed)
    inner_train, inner_valid = group_ratio_split(train_df, (0.8, 0.2), by="user", seed=seed + 1)
    users = pd.Index(np.union1d(plays["user"].unique(), np.union1d(friends["user"], friends["friend"])))
    items = pd.Index(np.sort(plays["item"].unique()))
    train, tune_train = to_csr(train_df, users, items, "conf"), to_csr(inner_train, users, items, "conf")
    test, tune_valid = to_csr(test_df, users, items), to_csr(inner_valid, users, items)
    rows, cols = users.get_indexer(friends["user"]), users.get_indexer(friends["friend"])
    social = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(users)))
    social = ((social + social.T) > 0).astype(np.float32).tocsr()  # the graph is symmetric; make sure
    stats = _stats(plays, train=train, test=test)
    stats["friend_edges"] = int(social.nnz // 2)
    return Split(
        train=train,
        test=test,
        exclude=as_csr(train, binary=True),
        tune_train=tune_train,
        tune_valid=tune_valid,
        tune_exclude=as_csr(tune_train, binary=True),
        filter_items=_no_train_items(train),
        tune_filter_items=_no_train_items(tune_train),
        social=social,
        stats=stats,
    )


#: Dataset -> k of the iterative k-core of the ``social-*`` protocols: 0 (none) for Last.fm, as RecBole-GNN;
#: for a trust dataset the smallest k of 2, 3, 5, 10 whose core keeps at most ~12,000 items (so the item-item
#: models' dense inverse fits on a small machine).
SOCIAL_KCORE = {"lastfm": 0, "ciao": 5, "epinions": 10, "ciaodvd": 2, "filmtrust": 2}


def social_frame(dataset: str, root: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``social-*`` protocols' rows: (pairs: user, item, rating) and (directed trust: user, friend).

    Every rated (or played) pair is one implicit interaction (duplicates merged, in first-seen order), then
    the ``SOCIAL_KCORE`` k-core; trust links keep only users left in the frame (no self-links, no duplicates).
    ``rating`` (the pair's highest rating; Last.fm: its play count) plays no part in the protocol: only the
    full-pipeline import reads it. Last.fm's friend links are already symmetric.
    """
    if dataset == "lastfm":
        plays, trust = datasets.load_lastfm(root)
        df = plays.rename(columns={"plays": "rating"})[["user", "item", "rating"]]
    else:
        ratings, trust = datasets.load_trust(dataset, root)
        df = ratings.assign(rating=ratings.groupby(["user", "item"])["rating"].transform("max"))
    df = df.drop_duplicates(["user", "item"]).reset_index(drop=True)
    if SOCIAL_KCORE[dataset]:
        df = kcore(df, k=SOCIAL_KCORE[dataset]).reset_index(drop=True)
    kept = df["user"].unique()
    trust = trust[trust["user"].isin(kept) & trust["friend"].isin(kept) & (trust["user"] != trust["friend"])]
    return df, trust.drop_duplicates().reset_index(drop=True)


def social_split_frames(
    dataset: str, root: str | Path | None = None, seed: int = 2020
) -> tuple[list[pd.DataFrame], pd.DataFrame, pd.Index, pd.Index]:
    """(train, valid, test) parts, the trust links, and the user and item id indexes of a ``social-*`` protocol."""
    df, trust = social_frame(dataset, root)
    parts = group_ratio_split(df, (0.8, 0.1, 0.1), by="user", seed=seed)
    users, items = pd.Index(np.sort(df["user"].unique())), pd.Index(np.sort(df["item"].unique()))
    return parts, trust, users, items


def build_social(dataset: str, root: str | Path | None = None, seed: int = 2020) -> Split:
    """Per-user random 8:1:1 (RecBole's RS + RO, seed 2020); fit on train, tune on valid (train masked), test with
    train + valid masked; ``social[u, v] = 1`` when u trusts (or is a friend of) v."""
    (train_df, valid_df, test_df), trust, users, items = social_split_frames(dataset, root, seed)
    train, valid, test = (to_csr(part, users, items) for part in (train_df, valid_df, test_df))
    rows, cols = users.get_indexer(trust["user"]), users.get_indexer(trust["friend"])
    social = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(users)))
    social.sum_duplicates()
    social.sort_indices()
    stats = _stats(pd.concat([train_df, valid_df, test_df]), train=train, valid=valid, test=test)
    stats["trust_links"] = int(social.nnz)
    stats["users_trusting_someone"] = int((np.diff(social.indptr) > 0).sum())
    return _train_valid_test(train, valid, test, stats, social)


@dataclass(frozen=True)
class Protocol:
    """A named protocol: its dataset, split builder, cut-off, report columns, baselines and search grids."""

    name: str
    dataset: str
    build: Callable[..., Split]
    k: int
    columns: tuple[str, ...]  # metric keys shown in the report, in order
    models: tuple[str, ...]  # default model list (``a+b`` is a tuned blend of a and b)
    grids: dict[str, Any]  # model name -> grid (see evaluate.tuning.param_grid); "+" -> blend weights
    published: dict[str, dict[str, float]]
    source: str
    description: str


#: The models every protocol runs by default (``glassfeed evaluate --models`` picks others).
DEFAULT_MODELS = (
    "pop",
    "itemknn",
    "als",
    "ials",
    "bpr",
    "ease",
    "dlae",
    "rp3beta",
    "ease+als",
    "ease+rp3beta",
    "dlae+als",
)


PROTOCOLS: dict[str, Protocol] = {
    "ms-ml100k": Protocol(
        name="ms-ml100k",
        dataset="ml-100k",
        build=build_ms_ml100k,
        k=10,
        columns=("map", "ndcg@10", "precision@10", "recall@10"),
        models=DEFAULT_MODELS,
        grids={
            "itemknn": {"K": [50, 100, 200], "shrink": [0.0, 10.0, 50.0]},
            "als": [
                {"factors": [32, 64], "regularization": [1.0, 10.0, 30.0], "alpha": [1.0]},
                {"factors": [128, 256], "regularization": [20.0, 30.0, 50.0], "alpha": [2.0, 3.0, 5.0]},
            ],
            "bpr": {"factors": [64], "iterations": [50, 100], "pop_correction": [0.0, 1.0]},
            "ease": [{"lam": [100.0, 200.0, 400.0, 800.0]}, {"gamma": [0.5], "lam": [10.0, 25.0, 50.0, 100.0]}],
            "dlae": {"gamma": [0.5], "p": [0.33, 0.5, 0.67], "lam": [50.0, 100.0], "xi": [0.0, 0.3]},
            "ials": [
                {"factors": [64, 128], "unobserved_weight": [0.1], "reg": [0.03]},
                {"factors": [64], "unobserved_weight": [1.0], "reg": [0.01]},
            ],
            "rp3beta": {"alpha": [0.6, 0.8, 1.0], "beta": [0.2, 0.4, 0.6], "K": [100, 200]},
            "gfcf": {"k": [64, 128, 256], "alpha": [0.3, 1.0]},
            "+": {"weight": [0.0, 0.1, 0.25, 0.5, 1.0]},
        },
        published={  # MS Recommenders README / movielens.ipynb (anchors.md section 4)
            "BiVAE": {"map": 0.146, "ndcg@10": 0.475, "precision@10": 0.412, "recall@10": 0.219},
            "BPR (cornac)": {"map": 0.132, "ndcg@10": 0.442, "precision@10": 0.388, "recall@10": 0.213},
            "LightGCN": {"map": 0.089, "ndcg@10": 0.420, "precision@10": 0.380, "recall@10": 0.144},
            "NCF": {"map": 0.108, "ndcg@10": 0.396, "precision@10": 0.347, "recall@10": 0.181},
            "SAR": {"map": 0.111, "ndcg@10": 0.382, "precision@10": 0.331, "recall@10": 0.176},
        },
        source="recommenders-team/recommenders examples/06_benchmarks/movielens.ipynb",
        description="ML-100k, stratified 75/25 split by item (seed 42), every test rating relevant, top-10 with "
        "training items removed; MAP is their map() (normalised by all test items).",
    ),
    "recbole-ml1m": Protocol(
        name="recbole-ml1m",
        dataset="ml-1m",
        build=build_recbole_ml1m,
        k=10,
        columns=("recall@10", "mrr@10", "ndcg@10", "hit@10", "precision@10"),
        models=DEFAULT_MODELS,
        grids={
            "itemknn": {"K": [100, 200], "shrink": [10.0, 50.0]},
            "als": [
                {"factors": [64, 128], "regularization": [0.1, 1.0], "alpha": [5.0]},
                {"factors": [128], "regularization": [30.0, 100.0], "alpha": [2.0, 10.0]},
            ],
            "bpr": {"factors": [64], "iterations": [50]},  # ~30 s a fit on one core: one point only
            "ease": [{"lam": [500.0, 1000.0]}, {"gamma": [0.5], "lam": [25.0, 50.0, 100.0]}],
            "dlae": {"gamma": [0.5], "p": [0.25, 0.5], "lam": [50.0], "xi": [0.0, 0.3, 0.5]},
            "ials": [  # ~25 s (64 factors) and ~80 s (128) a fit on one core
                {"factors": [64], "unobserved_weight": [0.3], "reg": [0.01]},
                {"factors": [128], "unobserved_weight": [0.3], "reg": [0.01]},
            ],
            "rp3beta": {"alpha": [0.6, 1.0], "beta": [0.4, 0.6, 0.8], "K": [100]},
            "gfcf": {"k": [64, 128, 256], "alpha": [0.3, 1.0]},  # ~10 s a fit on one core
            "+": {"weight": [0.0, 0.1, 0.25, 0.3, 0.4, 0.5, 0.6, 1.0]},  # a+b+c: 64 (w_b, w_c) pairs
        },
        published={  # RecBole benchmark/hyper/general/*-ml-1m_general.md (anchors.md section 4)
            "ADMMSLIM": {
                "recall@10": 0.2134,
                "mrr@10": 0.4900,
                "ndcg@10": 0.2904,
                "hit@10": 0.7804,
                "precision@10": 0.2106,
            },
            "EASE": {
                "recall@10": 0.2139,
                "mrr@10": 0.4808,
                "ndcg@10": 0.2865,
                "hit@10": 0.7837,
                "precision@10": 0.2082,
            },
            "RecVAE": {
                "recall@10": 0.2163,
                "mrr@10": 0.4632,
                "ndcg@10": 0.2795,
                "hit@10": 0.7877,
                "precision@10": 0.2033,
            },
            "LightGCN": {
                "recall@10": 0.1823,
                "mrr@10": 0.4312,
                "ndcg@10": 0.2476,
                "hit@10": 0.7316,
                "precision@10": 0.1835,
            },
            "BPR": {"recall@10": 0.1725, "mrr@10": 0.4221, "ndcg@10": 0.2407, "hit@10": 0.7131, "precision@10": 0.1802},
            "ItemKNN": {
                "recall@10": 0.1723,
                "mrr@10": 0.4254,
                "ndcg@10": 0.2389,
                "hit@10": 0.7139,
                "precision@10": 0.1752,
            },
            "Pop": {"recall@10": 0.0699, "mrr@10": 0.1890, "ndcg@10": 0.1006, "hit@10": 0.4572, "precision@10": 0.0866},
        },
        source="RUCAIBox/RecBole benchmark/md/ml-1m_general.md and benchmark/hyper/general/",
        description="ML-1M, ratings >= 3, iterative 10-core, per-user random 8:1:1, full ranking with training "
        "items removed, hyper-parameters chosen on validation NDCG@10.",
    ),
    "lastfm-social": Protocol(
        name="lastfm-social",
        dataset="lastfm",
        build=build_lastfm_social,
        k=10,
        columns=("recall@10", "ndcg@10", "precision@10", "hit@10", "mrr@10"),
        models=("pop", "social", "itemknn", "als", "ease", "rp3beta", "als+social", "ease+social"),
        grids={
            "social": {"weighting": ["count", "share"]},
            "itemknn": {"K": [50, 100, 200], "shrink": [0.0, 10.0]},
            "als": {"factors": [64, 128], "regularization": [1.0, 10.0], "alpha": [1.0]},
            "ease": {"lam": [50.0, 200.0, 500.0], "max_items": [4000]},
            "rp3beta": {"alpha": [0.6, 0.8, 1.0], "beta": [0.0, 0.2, 0.4], "K": [100, 200]},
            "+": {"weight": [0.0, 0.05, 0.1, 0.2, 0.4]},
        },
        published={},
        source="HetRec 2011 Last.fm 2K (no published number for this split)",
        description="Last.fm 2K user-artist pairs, per-user random 80/20, confidence log(1 + plays), friend graph "
        "for the social model, top-10 with training artists removed.",
    ),
}

#: The ``social-*`` protocols' models and grids (one setting for every dataset; chosen before any test run).
SOCIAL_MODELS = (
    "pop",
    "social",
    "trustwalk",
    "itemknn",
    "als",
    "ease",
    "rp3beta",
    "ease+social",
    "ease+trustwalk",
)
SOCIAL_GRIDS: dict[str, Any] = {
    "social": {"weighting": ["count", "share"]},
    "trustwalk": {"alpha": [0.3, 0.6, 0.9], "depth": [1, 2], "mix": [0.5, 0.9], "beta": [0.5]},
    "itemknn": {"K": [50, 200], "shrink": [0.0, 10.0]},
    "als": {"factors": [64], "regularization": [1.0, 10.0], "alpha": [1.0, 5.0]},
    "ease": {"lam": [50.0, 200.0, 500.0], "max_items": [4000]},
    "rp3beta": {"alpha": [0.8, 1.0], "beta": [0.2, 0.5], "K": [100]},
    "+": {"weight": [0.0, 0.05, 0.1, 0.2, 0.4, 1.0]},
}
SOCIAL_SOURCES = {
    "lastfm": "HetRec 2011 Last.fm 2K; published rows: RUCAIBox/RecBole-GNN results/social/lastfm.md",
    "ciao": "Ciao (Tang et al. 2012, mTrust); no published number for this split",
    "epinions": "Epinions (Tang et al. 2012, mTrust); no published number for this split",
    "ciaodvd": "CiaoDVD (Guo et al. 2014); no published number for this split",
    "filmtrust": "FilmTrust (Guo et al. 2013); no published number for this split",
}
#: RecBole-GNN's LastFM table (8:1:1 ratio split, full ranking, 64-dim embeddings; their own seed and split).
RECBOLE_GNN_LASTFM = {
    "MHCN": {"recall@10": 0.2123, "mrr@10": 0.3782, "ndcg@10": 0.2068, "hit@10": 0.6523, "precision@10": 0.1042},
    "SEPT": {"recall@10": 0.2127, "mrr@10": 0.3703, "ndcg@10": 0.2057, "hit@10": 0.6465, "precision@10": 0.1044},
    "LightGCN": {"recall@10": 0.2064, "mrr@10": 0.3559, "ndcg@10": 0.1972, "hit@10": 0.6322, "precision@10": 0.1009},
    "NGCF": {"recall@10": 0.1960, "mrr@10": 0.3479, "ndcg@10": 0.1898, "hit@10": 0.6141, "precision@10": 0.0961},
    "DiffNet": {"recall@10": 0.1757, "mrr@10": 0.3117, "ndcg@10": 0.1694, "hit@10": 0.5621, "precision@10": 0.0857},
    "BPR": {"recall@10": 0.1761, "mrr@10": 0.3026, "ndcg@10": 0.1674, "hit@10": 0.5573, "precision@10": 0.0858},
}

for _name in SOCIAL_KCORE:
    _k = SOCIAL_KCORE[_name]
    PROTOCOLS[f"social-{_name}"] = Protocol(
        name=f"social-{_name}",
        dataset=_name,
        build=partial(build_social, _name),
        k=10,
        columns=("recall@10", "mrr@10", "ndcg@10", "hit@10", "precision@10"),
        models=SOCIAL_MODELS,
        grids=SOCIAL_GRIDS,
        published=RECBOLE_GNN_LASTFM if _name == "lastfm" else {},
        source=SOCIAL_SOURCES[_name],
        description=f"{_name}: every rated pair an implicit interaction, "
        + (f"iterative {_k}-core, " if _k else "no filtering, ")
        + "per-user random 8:1:1 (seed 2020), full ranking with training items removed, "
        + ("friend links (both directions)" if _name == "lastfm" else "directed trust links (u trusts v)")
        + " between kept users, hyper-parameters chosen on validation NDCG@10.",
    )
