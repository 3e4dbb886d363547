"""Position debiasing's measurement (``sim/position_bias.py``) and the position effect it is measured against
(``BehaviourParams.position_effect`` in ``population.respond``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from glassfeed.domain import EventKind
from glassfeed.sim.behaviour import BehaviourParams, engagement_probs
from glassfeed.sim.generate import generate_network
from glassfeed.sim.population import Population, PostTable, respond, sample_post_features
from glassfeed.sim.position_bias import appeal_error, following_at, slot_rates, true_appeal

ATT = BehaviourParams().attention


def _pairs(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.01, 0.3, n), rng.integers(0, 20, n)


def test_a_model_equal_to_the_true_appeal_has_no_error():
    true, slot = _pairs()
    e = appeal_error(true.copy(), true, slot)
    assert e.n == len(true) and e.mae == 0.0 and e.log_ratio == 0.0 and e.spearman == pytest.approx(1.0)
    assert all(g.mae == 0.0 and g.log_ratio == 0.0 for g in e.by_slot.values())


def test_a_model_that_learned_the_position_effect_is_off_by_it():
    true, slot = _pairs()
    pred = true * ATT**slot  # what raw logs teach: engagement per impression at the slot it was logged at
    e = appeal_error(pred, true, slot)
    assert e.log_ratio == pytest.approx(np.log(ATT) * slot.mean())
    assert e.mae == pytest.approx(np.mean(true * (1 - ATT**slot)))
    for name, lo, hi in (("0-4", 0, 5), ("5-9", 5, 10), ("10-14", 10, 15), ("15+", 15, 99)):
        m = (slot >= lo) & (slot < hi)
        assert e.by_slot[name].n == m.sum()
        assert e.by_slot[name].log_ratio == pytest.approx(np.log(ATT) * slot[m].mean())
    assert e.by_slot["0-4"].log_ratio > e.by_slot["15+"].log_ratio
    # a uniform scale keeps the order (rank correlation 1) but not the level
    half = appeal_error(true / 2, true)
    assert half.spearman == pytest.approx(1.0) and half.log_ratio == pytest.approx(np.log(0.5))
    with pytest.raises(ValueError):
        appeal_error(true[:3], true)


def test_respond_with_the_position_effect_reads_slot_k_with_probability_attention_to_the_k():
    rng = np.random.default_rng(0)
    pop = Population.sample(3000, rng, start_ts=0.0)
    posts = PostTable()
    authors = rng.integers(0, 3000, 50).astype(np.int32)
    posts.add(authors, np.full(50, -100.0), *sample_post_features(pop, authors, rng))
    users = np.arange(3000)
    pages = np.tile(np.arange(10), (3000, 1))
    pages[posts.author[pages] == users[:, None]] = -1
    pop.time_budget[:] = 1e6  # long sessions: every slot gets scanned often enough
    on = BehaviourParams(position_effect=True, quit_hazard=0.0, quit_fatigue=0.0)
    off = dataclasses.replace(on, position_effect=False)
    clicks = []
    for params in (off, on):
        res = respond(pages, users, 0.0, np.random.default_rng(1), pop, posts, params, update=False)
        c = res.events.kind == int(EventKind.CLICK)
        clicks.append(np.bincount(res.events.position[c], minlength=10))
    assert clicks[1][0] == clicks[0][0]  # the top slot is always read: the same draws, the same clicks
    ratio = clicks[1] / clicks[0]
    assert np.all(np.abs(ratio - ATT ** np.arange(10)) < 0.08)
    assert ratio[9] < 0.7


def test_true_appeal_is_the_behaviour_models_probability_once_read():
    net = generate_network(150, 3, 4)
    t = float(net.start_ts + 2 * 86400)
    follows = following_at(net, t)
    ev = net.events
    fol = (ev.kind == int(EventKind.FOLLOW)) & (ev.ts < t)
    assert np.isin(ev.user[fol].astype(np.int64) * 150 + ev.target_user[fol], follows).all()
    late = (ev.kind == int(EventKind.FOLLOW)) & (ev.ts >= t)
    late_keys = ev.user[late].astype(np.int64) * 150 + ev.target_user[late]
    initial = net.follow_src.astype(np.int64) * 150 + net.follow_dst
    assert not np.isin(np.setdiff1d(late_keys, initial), follows).any()
    u, p = np.array([0, 1, 2]), np.array([5, 6, 7])
    truth = true_appeal(net, u, p, follows)
    a = net.post_author[p]
    following = np.isin(u * 150 + a, follows)
    aff = 0.75 * following + 0.25 * (net.user_community[u] == net.user_community[a])
    match = net.user_interests[u, net.post_topic[p]] / net.user_interests[u].max(1)
    want = engagement_probs(
        match, net.post_quality[p], net.post_divisiveness[p], aff, net.user_leaning[u] * net.user_leaning[a]
    )
    assert np.allclose(truth["like"], want.like) and np.allclose(truth["click"], want.click)


def test_generated_logs_carry_the_position_effect_only_when_asked():
    from glassfeed.sim.generate import GeneratorParams

    on = generate_network(300, 4, 2, GeneratorParams(behaviour=BehaviourParams(position_effect=True)))
    off = generate_network(300, 4, 2)
    end = float(on.start_ts + 4 * 86400)
    r_on, r_off = (slot_rates(n, EventKind.CLICK, end, 20) for n in (on, off))
    assert r_on[10:].mean() / r_on[:3].mean() < 0.75 * r_off[10:].mean() / r_off[:3].mean()
