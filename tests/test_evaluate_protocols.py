"""Splitters and filters on synthetic frames, then the real datasets' published shapes (skipped when absent)."""

import numpy as np
import pandas as pd
import pytest

from glassfeed.evaluate import datasets
from glassfeed.evaluate.protocols import (
    build_lastfm_social,
    build_ms_ml100k,
    group_ratio_split,
    kcore,
    recbole_ml1m_frame,
    split_counts,
    stratified_split,
)


def frame(sizes: dict[int, int], seed: int = 0) -> pd.DataFrame:
    """Item i gets sizes[i] ratings from distinct users."""
    rng = np.random.default_rng(seed)
    rows = [(u, item) for item, n in sizes.items() for u in rng.choice(1000, size=n, replace=False)]
    df = pd.DataFrame(rows, columns=["user", "item"])
    return df.sample(frac=1, random_state=1).reset_index(drop=True)


def test_stratified_split_puts_floor_of_ratio_in_train_per_item():
    sizes = dict(enumerate([1, 2, 3, 4, 5, 7, 8, 13, 40]))
    train, test = stratified_split(frame(sizes), ratio=0.75, by="item", seed=42)
    got = train.groupby("item").size().reindex(list(sizes), fill_value=0)
    assert got.tolist() == [int(np.floor(0.75 * n)) for n in sizes.values()]  # an item with 1 rating: all test
    assert len(train) + len(test) == sum(sizes.values())
    assert not set(train.index) & set(test.index)


def test_stratified_split_matches_a_sort_and_rank_reference():
    """The recommenders algorithm written plainly with pandas: draw, sort by (item, draw), rank / count."""
    df = frame(dict(enumerate(range(1, 30))), seed=5)
    ref = df.copy()
    ref["draw"] = np.random.RandomState(42).rand(len(ref))  # = np.random.seed(42); np.random.rand(n)
    ref = ref.sort_values(["item", "draw"])
    ref["frac"] = (ref.groupby("item").cumcount() + 1) / ref.groupby("item")["item"].transform("count")
    train, _ = stratified_split(df, ratio=0.75, by="item", seed=42)
    assert set(train.index) == set(ref.index[ref["frac"] <= 0.75])


def test_split_counts_follow_recbole_rounding():
    assert split_counts(np.array([10, 15, 19, 5]), (0.8, 0.1, 0.1)).tolist() == [
        [8, 1, 1],
        [13, 1, 1],
        [17, 1, 1],
        [3, 1, 1],
    ]  # 5: 0.5 rounds to 0, bumped to 1 per part
    assert split_counts(np.array([50, 1]), (0.8, 0.2)).tolist() == [[40, 10], [1, 0]]


def test_group_ratio_split_cuts_every_user_and_covers_all_rows():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": np.repeat(np.arange(30), rng.integers(10, 40, size=30))})
    df["item"] = np.arange(len(df))
    parts = group_ratio_split(df, (0.8, 0.1, 0.1), by="user", seed=7)
    sizes = np.stack([p.groupby("user").size().reindex(range(30), fill_value=0).to_numpy() for p in parts], axis=1)
    assert (sizes == split_counts(df.groupby("user").size().to_numpy(), (0.8, 0.1, 0.1))).all()
    assert sorted(pd.concat(parts).index) == list(df.index)
    again = group_ratio_split(df, (0.8, 0.1, 0.1), by="user", seed=7)
    assert all(a.index.equals(b.index) for a, b in zip(parts, again))  # seeded


def test_kcore_removes_until_every_user_and_item_has_k():
    # user 3 has one rating; without it item 2 has one, and without that user 2 has one: a cascade
    df = pd.DataFrame({"user": [0, 0, 1, 1, 2, 2, 3], "item": [0, 1, 0, 1, 1, 2, 2]})
    out = kcore(df, k=2)
    assert sorted(zip(out["user"], out["item"])) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(kcore(df, k=1)) == len(df)


needs = {
    name: pytest.mark.skipif(not datasets.available(name), reason=f"{name} not under the data directory")
    for name in datasets.DATASETS
}


@needs["ml-100k"]
def test_ms_ml100k_split_keeps_75_percent_of_each_items_ratings():
    df = datasets.load_ml100k()
    train, test = stratified_split(df, ratio=0.75, by="item", seed=42)
    n = df.groupby("item").size()
    k = train.groupby("item").size().reindex(n.index, fill_value=0)
    assert (k == np.floor(0.75 * n)).all()  # every item is within one rating of 75%
    assert abs(k / n - 0.75).loc[n >= 100].max() < 0.01  # and within 1% once it has 100 ratings
    assert abs(len(train) / len(df) - 0.75) < 0.01
    split = build_ms_ml100k()
    assert split.train.nnz == len(train) and split.test.nnz == len(test)
    assert split.train.multiply(split.test).nnz == 0


@needs["ml-1m"]
def test_recbole_ml1m_filtered_counts_match_recbole():
    df = recbole_ml1m_frame()
    # RecBole benchmark/md/ml-1m_general.md: 834,449 interactions; its 3,124 items and 95.57% sparsity
    # count RecBole's padding id: 3,123 real items, 6,033 real users (1 - 834449 / (6034 * 3124) = 95.57%)
    assert len(df) == 834_449
    assert df["item"].nunique() == 3_123 and df["user"].nunique() == 6_033
    assert round(100 * (1 - len(df) / (6_034 * 3_124)), 2) == 95.57
    assert df["rating"].min() >= 3
    assert df["user"].value_counts().min() >= 10 and df["item"].value_counts().min() >= 10


@needs["lastfm"]
def test_lastfm_social_split_and_friend_graph():
    split = build_lastfm_social()
    assert split.social is not None and (split.social != split.social.T).nnz == 0
    assert split.stats["friend_edges"] == 12_717 and split.stats["interactions"] == 92_834
    assert split.train.nnz + split.test.nnz == 92_834
    assert split.train.multiply(split.test).nnz == 0
    per_user = np.diff(split.test.indptr)
    assert per_user.max() == 10  # 50 artists per user: int(0.2 * 50) held out
