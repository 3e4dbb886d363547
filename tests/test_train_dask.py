"""Training the engagement heads on Dask (``train.DaskBoosterFit`` on a ``LocalCluster``): the same examples,
parameters and bins as single-process training; one worker grows the one-process trees (so the held-out AUC of
issue 12 item 5, within ±0.005, exactly), two workers the one-process first tree of every head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from glassfeed.feed.heads import EngagementHeads
from glassfeed.feed.train import (
    DaskBoosterFit,
    Examples,
    TrainReport,
    best_iteration,
    build_examples,
    dask_client,
    train_heads,
)
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings
from glassfeed.sim.generate import generate_network
from glassfeed.store import open_store

AUC_TOLERANCE = 0.005  # issue 12 item 5


def _heads() -> EngagementHeads:
    # early stopping from 20 held-out positives, so that heads of this small network stop early (LightGBM's
    # callback in one process, the same rule applied after the fact on Dask)
    return EngagementHeads(early_stopping_min_positives=20)


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Examples:
    """The point-in-time examples of a small generated network (300 users x 6 days, as the trained_feed fixture)."""
    net = generate_network(300, 6, 3)
    end = float(net.events.ts.max()) + 60.0
    store = open_store(tmp_path_factory.mktemp("dask") / "feed.db")
    write_network(net, Ingestor(store, clock=lambda: end))
    try:
        return build_examples(store, max_rows=100_000)
    finally:
        store.close()


@pytest.fixture(scope="module")
def one_process(examples: Examples) -> tuple[EngagementHeads, TrainReport]:
    heads, _, _, report = train_heads(examples.X, examples.Y, examples.ts, _heads())
    return heads, report


def _on_dask(examples: Examples, workers: int) -> tuple[EngagementHeads, TrainReport]:
    cfg = packaged_settings().train.model_copy(update={"dask_workers": workers, "dask_processes": False})
    with dask_client("local", cfg) as client:
        assert len(client.ncores()) == workers
        heads, _, _, report = train_heads(
            examples.X, examples.Y, examples.ts, _heads(), fit_booster=DaskBoosterFit(client)
        )
    return heads, report


def _trees(booster: lgb.Booster) -> str:
    """The trees of a model's text, without its parameters (which name the machines of a distributed fit)."""
    text = booster.model_to_string()
    return text[text.index("Tree=0") : text.index("end of trees")]


def test_heads_trained_on_a_local_dask_cluster_match_single_process_auc(
    examples: Examples, one_process: tuple[EngagementHeads, TrainReport], tmp_path: Path
):
    local_heads, local = one_process
    heads, dask = _on_dask(examples, 1)
    trained = [h for h in local.heads if h.trees]
    assert len(trained) >= 4  # like, repost, reply, click, dwell learn on this network
    assert any(0 < h.trees < EngagementHeads().max_estimators for h in trained)  # early stopping was exercised
    for a, b in zip(local.heads, dask.heads, strict=True):
        assert a.head == b.head and a.trees == b.trees and a.positives_test == b.positives_test
        if a.trees:
            assert np.isfinite(a.auc) and a.auc > 0.55, a  # a real model, not a coin
            assert abs(a.auc - b.auc) <= AUC_TOLERANCE, (a.head, a.auc, b.auc)
            # one machine, the same bins: the one-process trees, exactly
            assert _trees(heads.boosters[a.head]) == _trees(local_heads.boosters[a.head]), a.head
    # calibrated and saved like any heads: serving cannot tell them apart
    heads.save(tmp_path / "heads")
    again = EngagementHeads.load(tmp_path / "heads")
    assert set(again.calibration) == {h.head for h in trained}
    np.testing.assert_allclose(again.predict(examples.X[:500]), heads.predict(examples.X[:500]))


def test_residual_heads_on_dask_start_from_the_same_offset(examples: Examples):
    """With ``offset_feature`` each machine's rows carry their offset as LightGBM's init_score, and the held-out
    losses Dask stops by start from it too: one worker grows the one-process trees and stops where it does."""

    def heads() -> EngagementHeads:
        return EngagementHeads(
            early_stopping_min_positives=20, offset_feature="like_rate", n_estimators=10, max_estimators=30
        )

    X, Y, ts = examples.X[:3000], examples.Y[:3000], examples.ts[:3000]
    local, _, _, _ = train_heads(X, Y, ts, heads())
    cfg = packaged_settings().train.model_copy(update={"dask_workers": 1, "dask_processes": False})
    with dask_client("local", cfg) as client:
        dask, _, _, _ = train_heads(X, Y, ts, heads(), fit_booster=DaskBoosterFit(client))
    assert local.offsets and local.offsets == dask.offsets
    assert local.trees == dask.trees and any(0 < t < 30 for t in local.trees.values())
    for name, booster in local.boosters.items():
        assert _trees(dask.boosters[name]) == _trees(booster), name


def _same_tree(a: dict[str, Any], b: dict[str, Any], where: str = "root") -> None:
    """Two nodes of ``Booster.dump_model()`` trees, and their subtrees, are the same: the same features, thresholds
    and row counts exactly, gains and values up to the order of float sums."""
    assert a.keys() == b.keys(), where
    for k, v in a.items():
        if k in ("left_child", "right_child"):
            _same_tree(v, b[k], f"{where}.{k}")
        elif isinstance(v, float) and k != "threshold":
            assert b[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (where, k)
        else:
            assert b[k] == v, (where, k)


def test_two_dask_workers_bin_like_one_process_and_grow_its_first_tree(
    examples: Examples, one_process: tuple[EngagementHeads, TrainReport]
):
    """Two LightGBM machines, each with half of the rows, bin every feature with the bins one process finds from
    all of them, so the first tree of every head (grown from the same histograms, summed over the machines) is the
    one-process tree, thresholds included; the earlier code let each machine bin a share of the features from its
    own half, and no first tree matched. Later trees may differ: LightGBM's data-parallel learner estimates a
    leaf's row count from its hessians (one process counts it), and from the second tree on the hessians differ
    by row, so on this network's 11 to 148 held-out positives the AUC moves by up to 0.01; docs/feed.md
    ("Dask") measures the ±0.005 on the 2,000-user network."""
    local_heads, local = one_process
    heads, dask = _on_dask(examples, 2)
    for a, b in zip(local.heads, dask.heads, strict=True):
        assert a.head == b.head and bool(a.trees) == bool(b.trees) and a.positives_test == b.positives_test
        if not a.trees:
            continue
        assert np.isfinite(b.auc) and b.auc > 0.55, b  # a real model, not a coin
        one, two = local_heads.boosters[a.head], heads.boosters[a.head]
        assert "[tree_learner: data]" in two.model_to_string() and "[num_machines: 2]" in two.model_to_string()
        d1, d2 = one.dump_model(), two.dump_model()
        assert d2["feature_infos"] == d1["feature_infos"], a.head  # each feature's range: the same bin mappers
        _same_tree(d1["tree_info"][0]["tree_structure"], d2["tree_info"][0]["tree_structure"], a.head)


def test_best_iteration_follows_lightgbms_early_stopping_rule():
    """The round of lowest held-out loss, looking no further than ``stopping_rounds`` rounds past it."""
    assert best_iteration(np.array([3.0, 2.0, 2.5, 2.5, 2.6, 1.0]), 3) == 2  # stopped before the late dip
    assert best_iteration(np.array([3.0, 2.0, 2.5, 2.5, 1.0]), 3) == 5
    assert best_iteration(np.array([3.0, 2.0, 2.0]), 5) == 2  # no strict improvement: the first best
