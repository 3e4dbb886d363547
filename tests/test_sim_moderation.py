"""Moderation arms in the simulator: the counter-based ground truth and stand-in classifier, and end to end through
the real Ingestor, ModerationService and feed pipeline on a tiny society."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glassfeed.sim.loop import SimConfig, copy_base, prepare_base, run_simulation
from glassfeed.sim.moderation import (
    ClassifierParams,
    HarmParams,
    ModeratedWorld,
    ModerationArm,
    QueuedScorer,
    arms_for,
    classifier_scores,
    hashed_normal,
    hashed_uniform,
    moderation_policy,
    run_moderation_simulation,
    toxic_truth,
)
from glassfeed.sim.report import final_table_rows, markdown_table
from glassfeed.store import open_store


def test_hashed_draws_are_pure_and_uniform():
    idx = np.arange(200_000)
    u = hashed_uniform(3, idx, 1)
    assert np.array_equal(u, hashed_uniform(3, idx, 1))
    assert np.array_equal(u[1000:1010], hashed_uniform(3, idx[1000:1010], 1))  # per index, not per call
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    assert np.histogram(u, 10, (0, 1))[0].min() > 19_000  # each decile holds ~20,000
    other = hashed_uniform(3, idx, 2)
    assert abs(np.corrcoef(u, other)[0, 1]) < 0.01
    assert abs(np.corrcoef(u, hashed_uniform(4, idx, 1))[0, 1]) < 0.01
    z = hashed_normal(3, idx)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_ground_truth_concentrates_in_divisive_low_quality_posts():
    idx = np.arange(100_000)
    p = HarmParams()
    calm = toxic_truth(1, idx, np.full(len(idx), 0.5), np.full(len(idx), 0.1), p).mean()
    heated = toxic_truth(1, idx, np.full(len(idx), 0.5), np.full(len(idx), 0.8), p).mean()
    heated_good = toxic_truth(1, idx, np.full(len(idx), 0.9), np.full(len(idx), 0.8), p).mean()
    # sigmoid(-3.5 + 6 d - 3 q): d 0.1, q 0.5 -> sigmoid(-4.4) = 0.0121; d 0.8, q 0.5 -> sigmoid(-0.2) = 0.4502;
    # d 0.8, q 0.9 -> sigmoid(-1.4) = 0.1978 (sampling sd at n = 1e5 is <= 0.0016)
    assert calm == pytest.approx(0.0121, abs=0.003)
    assert heated == pytest.approx(0.4502, abs=0.006)
    assert heated_good == pytest.approx(0.1978, abs=0.006)


def test_stand_in_reproduces_the_offensive_heads_operating_points():
    """The default stand-in, at the shipped head's class moments, lands near the measured rates (docs)."""
    n = 200_000
    idx = np.arange(n)
    toxic = hashed_uniform(9, idx, 7) < 0.3
    s = classifier_scores(9, idx, toxic, np.zeros(n), ClassifierParams())
    measured = {0.34: (0.617, 0.174), 0.8: (0.267, 0.008), 0.9: (0.154, 0.003)}  # (TPR, FPR), TweetEval test
    for t, (tpr, fpr) in measured.items():
        assert (s[toxic] >= t).mean() == pytest.approx(tpr, abs=0.07)
        assert (s[~toxic] >= t).mean() == pytest.approx(fpr, abs=0.015)
    biased = classifier_scores(9, idx, toxic, np.ones(n), ClassifierParams(divisive_bias=1.0))
    assert (biased[~toxic] >= 0.8).mean() > 3 * (s[~toxic] >= 0.8).mean()  # heated-but-clean posts over-flagged


def test_queued_scorer_refuses_a_batch_it_was_not_given_scores_for():
    q = QueuedScorer("offensive")
    q.queue(np.array([0.1, 0.9]))
    assert q(["a", "b"])["offensive"].tolist() == [0.1, 0.9]
    with pytest.raises(RuntimeError):
        q(["a"])  # consumed: nothing queued
    q.queue(np.array([0.5]))
    with pytest.raises(RuntimeError):
        q(["a", "b"])


def test_arms_and_packaged_sim_policies():
    arms = arms_for(["engagement", "chronological"], ["none", "sim_downrank"])
    assert [a.name for a in arms] == [
        "engagement",
        "engagement+sim_downrank",
        "chronological",
        "chronological+sim_downrank",
    ]
    down = moderation_policy("sim_downrank")
    assert [(r.action, r.factor, r.when[0].value) for r in down.rules] == [("downrank", 0.5, 0.8)]
    assert [(r.action, r.when[0].value) for r in moderation_policy("sim_drop").rules] == [("drop", 0.9)]
    assert "home" in down.rules[0].surfaces
    with pytest.raises(ValueError):
        moderation_policy("no_such_policy")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = SimConfig(
        users=150,
        steps=3,
        seed=7,
        history_days=2,
        retrain_every=2,
        homog_every=2,
        homog_panel=60,
        train_rows=20_000,
        policies=("engagement",),
    )
    return cfg, prepare_base(cfg, tmp_path_factory.mktemp("simmodbase"))


def _strip(r, policy):
    series = {k: v for k, v in r.series[policy].items() if k != "rank_seconds"}
    return json.dumps(series)


def test_unmoderated_arm_is_the_plain_world(tiny, tmp_path):
    """An arm without moderation adds metrics but no draws: every existing series is identical to the plain run."""
    cfg, base = tiny
    plain = run_simulation(cfg, tmp_path / "plain", base=base)
    world = ModeratedWorld(cfg, ModerationArm("engagement"), copy_base(base, tmp_path / "w.db"), base)
    for k in range(cfg.steps):
        world.step(k)
    world.close()
    arm = {k: v for k, v in world.metrics.series.items() if k in plain.series["engagement"] and k != "rank_seconds"}
    assert json.dumps(arm) == _strip(plain, "engagement")
    assert len(world.metrics.series["toxic_share_consumed"]) == cfg.steps


def test_drop_arm_acts_through_ingest_and_the_lever(tiny, tmp_path):
    """Scores reach the store through the Ingestor; the ModerationService drops exactly the posts at or above the
    rule's threshold; no dropped post is served; the accounting matches the ground truth."""
    cfg, base = tiny
    world = ModeratedWorld(
        cfg, ModerationArm("engagement", "sim_drop_aggressive"), copy_base(base, tmp_path / "d.db"), base
    )
    n0 = world.posts.n
    for k in range(cfg.steps):
        world.step(k)
    assert world.posts.n > n0  # new posts were created (and scored at ingest)
    scores = world.store.post_scores()["offensive"]
    assert len(scores[0]) == world.store.count("posts") == world.posts.n  # history + every new post scored
    n = world.posts.n
    by_post = np.full(int(world.p2s.max()) + 1, np.nan)
    by_post[scores[0]] = scores[1]
    score = by_post[world.p2s[:n]]
    expected = world._scores(np.arange(n))
    assert np.allclose(score, expected, atol=1e-6)  # the store holds the stand-in's scores (float32 round trip)
    code = world.svc.state.visibility.action(world.p2s[:n], "home")
    assert np.array_equal(code == 5, score >= 0.5)  # ACTIONS[5] == "drop"
    # every page served after moderation started holds no dropped post
    active = np.arange(0, cfg.users, 3)
    pages = world._pages(active, world.t)
    served = pages[pages >= 0]
    assert len(served) and not (score[served] >= 0.5).any()
    extra = world.final_extra()
    toxic = world.metrics.toxic(np.arange(n))
    acted = score >= 0.5
    assert extra["actioned_share"] == pytest.approx(acted.mean())
    assert extra["recall"] == pytest.approx((acted & toxic).sum() / toxic.sum())
    assert extra["false_discovery"] == pytest.approx((acted & ~toxic).sum() / acted.sum())
    assert extra["automated_records"] == int(acted.sum())  # one logged automated action per dropped post
    world.close()
    st = open_store(tmp_path / "d.db")
    try:
        log = st.moderation_log()
    finally:
        st.close()
    assert sum(r.kind == "automated" for r in log) == int(acted.sum())


def test_run_with_arms_reports_moderation_rows(tiny, tmp_path):
    cfg, base = tiny
    arms = arms_for(["engagement"], ["none", "sim_drop_aggressive"])
    r = run_moderation_simulation(cfg, arms, tmp_path / "run", base=base)
    assert list(r.final) == ["engagement", "engagement+sim_drop_aggressive"]
    assert r.config["moderation"]["arms"]["engagement+sim_drop_aggressive"]["moderation"] == "sim_drop_aggressive"
    f0, f1 = r.final["engagement"], r.final["engagement+sim_drop_aggressive"]
    assert f0["actioned_share"] is None and f1["actioned_share"] > 0
    assert f1["toxic_share_consumed"] < f0["toxic_share_consumed"]
    _, rows = final_table_rows(r)
    assert any(row[0] == "posts actioned (home)" for row in rows)
    assert "toxic share, scanned" in markdown_table(r)


def test_cli_runs_arms_and_refuses_unknown_policies(tmp_path):
    from typer.testing import CliRunner

    from glassfeed.cli import app

    runner = CliRunner()
    base = ["simulate", "--users", "120", "--steps", "2", "--history-days", "2", "--policies", "engagement"]
    bad = runner.invoke(app, [*base, "--moderation", "none,no_such_policy", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "no_such_policy" in bad.output
    r = runner.invoke(app, [*base, "--moderation", "none,sim_drop", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "engagement+sim_drop" in r.output and "posts actioned (home)" in r.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["final"]) == {"engagement", "engagement+sim_drop"}
    assert res["config"]["moderation"]["classifier"]["name"] == "offensive"
    assert "posts actioned (home)" in (tmp_path / "out" / "report.html").read_text()
