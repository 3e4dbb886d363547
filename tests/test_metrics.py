"""Ranking metrics and top-k selection on tiny hand-computed cases, plus a naive reference on random data."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from glassfeed.evaluate.metrics import evaluate_topk, hits_matrix
from glassfeed.retrieval.base import topk


def rel(rows: list[list[int]], n_items: int = 20) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [j for row in rows for j in row]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_single_user_by_hand():
    out = evaluate_topk(np.array([[1, 2, 3]]), rel([[2, 5]]), k=3)
    assert out["precision@3"] == pytest.approx(1 / 3)
    assert out["recall@3"] == pytest.approx(1 / 2)
    assert out["ndcg@3"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert out["map"] == pytest.approx((1 / 2) / 2)  # precision at the hit (rank 2) over 2 relevant items
    assert out["map@3"] == pytest.approx((1 / 2) / 2)
    assert out["mrr@3"] == pytest.approx(1 / 2)
    assert out["hit@3"] == 1.0
    assert out["users"] == 1


def test_several_hits_ideal_dcg_and_average_precision():
    out = evaluate_topk(np.array([[2, 9, 0]]), rel([[0, 1, 2]]), k=3)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert out["ndcg@3"] == pytest.approx(dcg / idcg)
    assert out["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert out["mrr@3"] == 1.0


def test_users_without_test_items_are_not_counted():
    alone = evaluate_topk(np.array([[1, 2, 3]]), rel([[2, 5]]), k=3)
    both = evaluate_topk(np.array([[1, 2, 3], [7, 8, 9]]), rel([[2, 5], []]), k=3)
    assert both == alone
    assert evaluate_topk(np.array([[1, 2]]), rel([[]]), k=2)["users"] == 0


def test_k_larger_than_candidate_list_pads_with_misses():
    out = evaluate_topk(np.array([[4, -1, -1]]), rel([[4]]), k=3)
    assert out["precision@3"] == pytest.approx(1 / 3)  # divides by k, like both reference libraries
    assert out["recall@3"] == 1.0 and out["ndcg@3"] == pytest.approx(1.0) and out["map"] == 1.0
    # fewer columns than k: the missing slots are misses too
    assert evaluate_topk(np.array([[4]]), rel([[4]]), k=3) == out


def test_map_normalisers_differ_when_more_relevant_than_k():
    out = evaluate_topk(np.arange(10)[None, :], rel([list(range(12))]), k=10)
    assert out["map"] == pytest.approx(10 / 12)  # MS Recommenders' map(): / n_relevant
    assert out["map@10"] == 1.0  # map_at_k: / min(n_relevant, k)
    assert out["recall@10"] == pytest.approx(10 / 12)
    assert out["ndcg@10"] == pytest.approx(1.0)


def test_hits_ignore_padding_and_out_of_range_ids():
    h = hits_matrix(np.array([[-1, 3, 25]]), rel([[3]], n_items=20))
    assert h.tolist() == [[False, True, False]]


def test_topk_breaks_ties_by_lower_index():
    ids, vals = topk(np.array([[1.0, 3.0, 3.0, 2.0]]), 2)
    assert ids.tolist() == [[1, 2]] and vals.tolist() == [[3.0, 3.0]]
    ids, _ = topk(np.array([[5.0, 1.0, 1.0, 1.0, 0.0]]), 2)  # tie across the cut: lowest index wins
    assert ids.tolist() == [[0, 1]]
    ids, _ = topk(np.array([[1.0, 1.0, 1.0]]), 3)
    assert ids.tolist() == [[0, 1, 2]]


def test_topk_pads_excluded_and_missing_slots():
    ids, vals = topk(np.array([[-np.inf, 1.0, -np.inf]], dtype=np.float32), 3)
    assert ids.tolist() == [[1, -1, -1]]
    assert vals[0, 0] == 1.0 and np.isneginf(vals[0, 1:]).all()
    ids, _ = topk(np.array([[0.5, 2.0]]), 4)  # k beyond the catalogue
    assert ids.tolist() == [[1, 0, -1, -1]]


def naive(recs, relevant, k):
    """Per-user loops with Python sets: an independent reference for evaluate_topk."""
    sums = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0, "mapk": 0.0, "mrr": 0.0, "hit": 0.0}
    users = 0
    for u in range(len(recs)):
        truth = set(relevant[u].indices.tolist())
        if not truth:
            continue
        users += 1
        got, ap, first = 0, 0.0, 0.0
        dcg = 0.0
        for rank, item in enumerate(recs[u][:k], start=1):
            if item in truth:
                got += 1
                ap += got / rank
                dcg += 1 / math.log2(rank + 1)
                first = first or 1 / rank
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(truth), k) + 1))
        sums["precision"] += got / k
        sums["recall"] += got / len(truth)
        sums["ndcg"] += dcg / idcg
        sums["map"] += ap / len(truth)
        sums["mapk"] += ap / min(len(truth), k)
        sums["mrr"] += first
        sums["hit"] += got > 0
    return {key: v / users for key, v in sums.items()}, users


def test_matches_naive_reference_on_random_data():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 60, 30, 7
    relevant = sp.random(n_users, n_items, density=0.15, format="csr", random_state=1)
    relevant.data[:] = 1
    recs = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    recs[::5, -2:] = -1  # some users got fewer than k items
    out = evaluate_topk(recs, relevant, k)
    ref, users = naive(recs, relevant, k)
    assert out["users"] == users
    for key, name in [
        ("precision", f"precision@{k}"),
        ("recall", f"recall@{k}"),
        ("ndcg", f"ndcg@{k}"),
        ("map", "map"),
        ("mapk", f"map@{k}"),
        ("mrr", f"mrr@{k}"),
        ("hit", f"hit@{k}"),
    ]:
        assert out[name] == pytest.approx(ref[key]), name
