"""Heads as residual models over a retrieval feature (``[train] heads_offset``) and early-stopped on the held-out
requests' nDCG@10 (``[train] heads_stopping = "request_ndcg"``); docs/evaluation.md, "Heads that start from
retrieval"."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from glassfeed.feed.features import FEATURES, F
from glassfeed.feed.heads import EngagementHeads, best_rounds, fit_offset, one_se_rounds, request_ndcg
from glassfeed.feed.policy import HEADS


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _data(n: int, seed: int, k_effect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Examples whose like label rises with ``collab_gap`` and, by ``k_effect``, with ``age_h``; 100 requests."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    z = 1.5 * X[:, F["collab_gap"]] + k_effect * X[:, F["age_h"]] - 2.5
    Y = np.zeros((n, len(HEADS)), np.float32)
    Y[:, HEADS.index("like")] = rng.random(n) < _sigmoid(z)
    return X, Y, rng.integers(0, 100, n)


def test_fit_offset_recovers_the_slope_and_gives_missing_rows_their_own_log_odds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40_000)
    y = (rng.random(40_000) < _sigmoid(2.0 * x - 1.0)).astype(float)
    x[:10_000] = np.nan
    y[:10_000] = rng.random(10_000) < 0.1
    a, b, c = fit_offset(x, y)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-1.0, abs=0.1)
    assert _sigmoid(c) == pytest.approx(0.1, abs=0.01)
    assert fit_offset(np.ones(10), np.r_[np.ones(3), np.zeros(7)])[0] == 0.0  # a constant feature: intercept only


def test_best_rounds_reads_the_curve_and_may_keep_no_tree():
    assert best_rounds(np.array([0.50, 0.49, 0.48, 0.47]), 2) == 0  # the offset alone was best
    assert best_rounds(np.array([0.50, 0.52, 0.51, 0.51, 0.60]), 2) == 1  # stopped before the late rise
    assert best_rounds(np.array([0.50, 0.52, 0.51, 0.60]), 2) == 3


def test_one_se_rule_keeps_trees_only_when_they_beat_the_noise_of_the_held_out_requests():
    rng = np.random.default_rng(0)
    base = 0.5 + rng.normal(0.0, 0.3, size=(1, 400))
    wobble = rng.normal(0.0, 0.1, size=(1, 400))
    wobble -= wobble.mean()  # per-request noise with mean 0: SE of a difference about 0.1 / sqrt(400) = 0.005
    small = np.r_[base, base + 0.004 + wobble, base + 0.002]
    assert best_rounds(small.mean(axis=1), 5) == 1 and one_se_rounds(small, 5) == 0  # +0.004: within one SE
    large = np.r_[base, base + 0.02, base + 0.05 + wobble, base + 0.049]
    assert one_se_rounds(large, 5) == 2  # +0.05: every tree up to the best is kept
    mid = np.r_[base, base + 0.048 + wobble, base + 0.05]
    assert one_se_rounds(mid, 5) == 1  # one tree: 0.002 below two, within its SE of 0.005
    assert one_se_rounds(np.r_[base, base + 0.048 + wobble / 10, base + 0.05], 5) == 2  # SE 0.0005: two trees


def test_residual_head_is_sigmoid_of_offset_plus_trees_and_survives_save_load(tmp_path):
    X, Y, _ = _data(6000, 1, 1.0)
    heads = EngagementHeads(offset_feature="collab_gap", n_estimators=20, max_estimators=40)
    heads.fit(X[:4000], Y[:4000], X[4000:5000], Y[4000:5000])
    a, b, _ = heads.offsets["like"]
    assert a > 0  # the label rises with collab_gap
    booster = heads.boosters["like"]
    raw = a * X[5000:, F["collab_gap"]].astype(np.float64) + b
    raw += booster.predict(X[5000:], raw_score=True)
    got = heads.predict(X[5000:], calibrated=False)[:, HEADS.index("like")]
    np.testing.assert_allclose(got, _sigmoid(raw), rtol=1e-9)
    heads.save(tmp_path)
    assert json.loads((tmp_path / "heads.json").read_text())["params"]["offset_feature"] == "collab_gap"
    again = EngagementHeads.load(tmp_path)
    np.testing.assert_allclose(again.predict(X[5000:]), heads.predict(X[5000:]))


def test_request_ndcg_stopping_keeps_retrievals_order_when_the_trees_do_not_help_held_out_requests(tmp_path):
    """Training labels also follow age_h, held-out ones do not: the trees learn age_h and lower the held-out
    requests' nDCG, so stopping by it keeps no tree and each request is ordered by collab_gap alone; stopping by
    log-loss keeps trees."""
    X, Y, _ = _data(4000, 2, 4.0)
    Xc, Yc, req_c = _data(1500, 3, 0.0)
    like = HEADS.index("like")
    small = {"max_estimators": 40, "early_stopping_rounds": 5, "early_stopping_min_positives": 20}
    by_ndcg = EngagementHeads(offset_feature="collab_gap", stopping="request_ndcg", **small)
    by_ndcg.fit(X, Y, Xc, Yc, request_cal=req_c)
    assert by_ndcg.trees.get("like", 0) == 0 and by_ndcg.trained
    p = by_ndcg.predict(Xc)[:, like]
    assert spearmanr(p, Xc[:, F["collab_gap"]]).statistic == pytest.approx(1.0)
    grade = Yc[:, like].astype(np.int32)
    assert request_ndcg(p, grade, req_c) == pytest.approx(request_ndcg(Xc[:, F["collab_gap"]], grade, req_c))
    by_ndcg.save(tmp_path)  # an offset-only head has no tree file and still predicts after loading
    np.testing.assert_allclose(EngagementHeads.load(tmp_path).predict(Xc), by_ndcg.predict(Xc))
    by_loss = EngagementHeads(offset_feature="collab_gap", **small)
    by_loss.fit(X, Y, Xc, Yc, request_cal=req_c)
    assert by_loss.trees["like"] > 0


def test_heads_settings_reach_the_heads_and_default_to_plain_log_loss_heads():
    from glassfeed.feed.train import heads_from
    from glassfeed.settings import packaged_settings

    plain = heads_from(packaged_settings().train)
    assert (plain.offset_feature, plain.stopping) == ("", "logloss")
    cfg = packaged_settings().replace(train={"heads_offset": "collab_gap", "heads_stopping": "request_ndcg"}).train
    heads = heads_from(cfg)
    assert (heads.offset_feature, heads.stopping) == ("collab_gap", "request_ndcg")
    with pytest.raises(ValueError, match="not a feature"):
        EngagementHeads(offset_feature="nope").fit(*_data(500, 4, 0.0)[:2])
