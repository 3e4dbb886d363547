"""Audit metrics on small hand-made logs with hand-computed answers."""

import math

import numpy as np
import pytest

from glassfeed.audit import metrics as m


def test_engagement_rate_pooled_and_per_user():
    engaged = [1, 0, 0, 1, 1]
    users = [0, 0, 1, 1, 1]
    assert m.engagement_rate(engaged) == pytest.approx(3 / 5)
    per_user = m.engagement_rate(engaged, users, n_users=3)
    np.testing.assert_allclose(per_user[:2], [0.5, 2 / 3])
    assert math.isnan(per_user[2])  # user 2 saw nothing
    assert math.isnan(m.engagement_rate([]))


def test_time_spent_sums_dwell_and_ignores_missing():
    dwell_ms = [1000.0, np.nan, 2500.0, 500.0]
    users = [0, 0, 2, 0]
    np.testing.assert_allclose(m.time_spent(dwell_ms, users, n_users=3), [1.5, 0.0, 2.5])


def test_divisive_share_counts_threshold_inclusive_and_skips_unknown():
    d = [0.9, 0.5, 0.1, np.nan, 0.49]
    assert m.divisive_share(d, threshold=0.5) == pytest.approx(2 / 4)
    per_page = m.divisive_share(d, 0.5, groups=[0, 0, 1, 1, 2], n_groups=4)
    np.testing.assert_allclose(per_page[:3], [1.0, 0.0, 0.0])
    assert math.isnan(per_page[3])
    assert math.isnan(m.divisive_share([np.nan]))


def test_amplification_ratio_hand_computed():
    # users 0-3 treated, 4-7 control. Group 0: seen by 3 treated, 2 control -> 0.75/0.5 - 1 = 0.5.
    # Group 1: seen by 1 treated, 0 control -> +inf.  Group 2: seen by nobody -> nan (0/0).
    # Group 3: 1 treated, 2 control -> 0.25/0.5 - 1 = -0.5. Repeat impressions count once.
    imp_users = [0, 0, 1, 2, 4, 5, 5, 3, 0, 6, 7]
    imp_groups = [0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 3]
    treated = [True] * 4 + [False] * 4
    a = m.amplification_ratio(imp_users, imp_groups, treated, n_groups=4)
    assert a[0] == pytest.approx(0.5)
    assert a[1] == math.inf
    assert math.isnan(a[2])
    assert a[3] == pytest.approx(-0.5)


def test_amplification_ratio_audience_and_empty_arm():
    imp_users = [0, 2, 3]
    imp_groups = [0, 0, 0]
    treated = [True, True, False, False]
    # audience {0, 2}: treated share 1/1, control share 1/1 -> 0
    a = m.amplification_ratio(imp_users, imp_groups, treated, n_groups=1, audience=[1, 0, 1, 0])
    assert a[0] == pytest.approx(0.0)
    # audience with no control user -> nan, not a crash
    a = m.amplification_ratio(imp_users, imp_groups, treated, n_groups=1, audience=[1, 1, 0, 0])
    assert math.isnan(a[0])


def test_topic_entropy():
    counts = np.array([[2, 2, 0, 0], [5, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    h = m.topic_entropy(counts)
    np.testing.assert_allclose(h[:3], [1.0, 0.0, 2.0])
    assert math.isnan(h[3])
    hn = m.topic_entropy(counts, normalise=True)
    np.testing.assert_allclose(hn[:3], [0.5, 0.0, 1.0])


def test_nearest_neighbours_excludes_self_and_breaks_ties():
    v = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.0, 2.0]])
    np.testing.assert_array_equal(m.nearest_neighbours(v), [1, 0, 3, 2])
    # identical vectors: everyone ties; deterministic mode picks lowest other index
    ones = np.ones((4, 1))
    np.testing.assert_array_equal(m.nearest_neighbours(ones), [1, 0, 0, 0])
    rng = np.random.default_rng(0)
    picks = np.stack([m.nearest_neighbours(ones, rng) for _ in range(300)])
    assert np.all(picks != np.arange(4))
    assert set(np.unique(picks[:, 0])) == {1, 2, 3}  # random tie-breaking reaches every other user


def test_pair_jaccard_and_homogenisation_hand_computed():
    consumed = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    # pairs 0<->1 share 1 of 3 items; 2<->3 both empty -> defined as 0
    np.testing.assert_allclose(m.pair_jaccard(consumed, [1, 0, 3, 2]), [1 / 3, 1 / 3, 0.0, 0.0])
    vecs = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    ideal = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]], dtype=bool)
    # model pairs' Jaccard mean = (1/3 + 1/3 + 0 + 0)/4 = 1/6; ideal = (0 + 0 + 1 + 1)/4 = 1/2
    assert m.jaccard_homogenisation(consumed, vecs, ideal) == pytest.approx(1 / 6 - 1 / 2)


def test_homogenisation_batches_over_leading_axis():
    rng = np.random.default_rng(1)
    c = rng.random((3, 5, 8)) < 0.4
    vecs = rng.normal(size=(3, 5, 2))
    ideal = rng.random((3, 5, 8)) < 0.4
    batched = m.jaccard_homogenisation(c, vecs, ideal)
    single = [m.jaccard_homogenisation(c[i], vecs[i], ideal[i]) for i in range(3)]
    np.testing.assert_allclose(batched, single)


def test_polarisation_variance_and_bimodality():
    assert m.polarisation([0.2, 0.2, 0.2]) == pytest.approx(0.0)
    assert m.polarisation([-1, 1, -1, 1]) == pytest.approx(1.0)
    over_time = np.array([[0.0, 0.0, 0.5, -0.5], [-1.0, -1.0, 1.0, 1.0]])
    np.testing.assert_allclose(m.polarisation(over_time), [0.125, 1.0])
    assert m.polarisation([np.nan, 1.0, -1.0]) == pytest.approx(1.0)
    assert math.isnan(m.polarisation([np.nan]))
    two_camps = np.r_[np.full(50, -1.0), np.full(50, 1.0)]
    one_camp = np.random.default_rng(0).normal(size=2000)
    assert m.bimodality_coefficient(two_camps) > 5 / 9 > m.bimodality_coefficient(one_camp)
    assert math.isnan(m.bimodality_coefficient([1.0, 2.0, 3.0]))


def test_gini_hand_computed():
    assert m.gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert m.gini([0, 0, 0, 10]) == pytest.approx(3 / 4)  # (n-1)/n
    # [1,2,3,4]: sum (2i-5) x_i = -3 -2 +3 +12 = 10; / (4*10) = 0.25
    assert m.gini([4, 1, 3, 2]) == pytest.approx(0.25)
    assert m.gini([0, 0, 0]) == 0.0
    assert math.isnan(m.gini([]))
    np.testing.assert_allclose(m.gini(np.array([[1, 2, 3, 4], [5, 5, 5, 5]])), [0.25, 0.0])
    with pytest.raises(ValueError):
        m.gini([1, -1])
