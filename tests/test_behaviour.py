"""The behaviour model: monotone responses, revealed vs. stated preference, and the cascade ``respond``."""

import numpy as np
import pytest

from glassfeed.domain import EventKind
from glassfeed.sim import behaviour as bm
from glassfeed.sim.behaviour import BehaviourParams, engagement_probs, stated_satisfaction
from glassfeed.sim.population import Population, PostTable, respond, sample_post_features

GRID = np.linspace(0, 1, 11)


def test_like_probability_rises_with_interest_match():
    p = engagement_probs(GRID, quality=0.5, divisiveness=0.2)
    assert np.all(np.diff(p.like) > 0)
    assert np.all(np.diff(p.click) > 0)
    assert np.all(np.diff(p.see_less) < 0)


def test_click_probability_falls_with_position():
    pos = np.arange(20)
    p = engagement_probs(0.7, 0.5, 0.2, position=pos)
    assert np.all(np.diff(p.click) < 0)
    assert p.click[0] == pytest.approx(engagement_probs(0.7, 0.5, 0.2).click)
    assert p.click[10] == pytest.approx(p.click[0] * BehaviourParams().attention ** 10)


def test_divisiveness_pulls_clicks_and_replies_but_users_say_it_was_not_worth_it():
    p = engagement_probs(0.5, 0.5, GRID, alignment=-0.5)  # out-group reader
    assert np.all(np.diff(p.click) > 0) and np.all(np.diff(p.reply) > 0)
    assert np.all(np.diff(p.see_less) > 0) and np.all(np.diff(p.report) > 0)
    sat, regret = stated_satisfaction(0.5, 0.5, GRID)
    assert np.all(np.diff(sat) < 0) and np.all(np.diff(regret) > 0)
    # quality is what stated satisfaction rewards
    sat_q, _ = stated_satisfaction(0.5, GRID, 0.2)
    assert np.all(np.diff(sat_q) > 0)


def test_in_group_likes_divisive_posts_out_group_does_not():
    ingroup = engagement_probs(0.5, 0.5, GRID, alignment=0.6).like
    outgroup = engagement_probs(0.5, 0.5, GRID, alignment=-0.6).like
    assert np.all(np.diff(ingroup) > 0) and np.all(np.diff(outgroup) < 0)


def test_fatigue_lowers_engagement_and_dwell_head_is_bounded_by_click():
    p = engagement_probs(0.8, 0.7, 0.1, fatigue=GRID)
    assert np.all(np.diff(p.like) < 0) and np.all(np.diff(p.click) < 0)
    assert np.all(p.dwell <= p.click) and np.all(p.dwell > 0)
    params = BehaviourParams(dwell_quality=2.0)
    hi, lo = engagement_probs(0.5, [0.9, 0.1], 0.1, params=params).dwell
    assert hi > lo


def test_posting_multiplier_rewards_engagement_and_is_capped():
    p = BehaviourParams()
    m = bm.posting_multiplier([0, 1, 10, 100, 1e9], p)
    assert m[0] == 1.0 and np.all(np.diff(m) > 0) and m[-1] == p.reward_max_multiplier


def _world(n_users=200, n_posts=400, seed=0):
    rng = np.random.default_rng(seed)
    pop = Population.sample(n_users, rng, start_ts=0.0)
    posts = PostTable()
    authors = rng.integers(0, n_users, n_posts).astype(np.int32)
    posts.add(authors, np.full(n_posts, -100.0), *sample_post_features(pop, authors, rng))
    return pop, posts, rng


def test_respond_cascade_events_and_state():
    pop, posts, rng = _world()
    users = np.arange(150)
    pages = rng.integers(0, posts.n, (150, 20))
    pages[:, 15:] = -1  # empty tail
    pages[(pages >= 0) & (posts.author[np.maximum(pages, 0)] == users[:, None])] = -1  # no own posts
    res = respond(pages, users, 10.0, rng, pop, posts)
    ex = res.examined
    assert not ex[:, 15:].any()
    # cascade: once a user stops scanning, no later valid slot is examined
    valid = pages >= 0
    stopped = np.cumsum(valid & ~ex, 1) > 0
    assert not (ex & stopped).any()
    assert np.all(np.diff(res.events.ts) >= 0) and np.all(res.events.ts >= 10.0)
    imp = res.events.kind == EventKind.IMPRESSION
    assert imp.sum() == ex.sum() == res.n_seen.sum()
    assert np.all(pages[res.events.user[imp], res.events.position[imp]] == res.events.post[imp])
    dwell = res.events.kind == EventKind.DWELL
    assert dwell.sum() == (res.events.kind == EventKind.CLICK).sum() == res.clicked.sum()
    assert np.all(res.events.value[dwell] > 0) and np.all(np.isnan(res.events.value[~dwell]))
    on_post = res.events.post >= 0
    assert np.all(posts.author[res.events.post[on_post]] != res.events.user[on_post])
    assert np.all(res.time_spent[res.n_seen > 0] > 0)
    assert np.all((res.satisfaction[res.n_seen > 0] > 0) & (res.satisfaction[res.n_seen > 0] < 1))
    assert np.all(np.isnan(res.satisfaction[res.n_seen == 0]))
    assert np.all(pop.fatigue[users][res.n_seen > 0] > 0)  # state updated


def test_fatigue_shortens_sessions():
    pop, posts, rng = _world(n_users=400, n_posts=600, seed=3)
    users = np.arange(400)
    pages = rng.integers(0, posts.n, (400, 30))
    pages[posts.author[pages] == users[:, None]] = -1
    fresh = respond(pages, users, 0.0, np.random.default_rng(1), pop, posts, update=False)
    pop.fatigue[:] = 0.8
    tired = respond(pages, users, 0.0, np.random.default_rng(1), pop, posts, update=False)
    assert tired.n_seen.mean() < 0.6 * fresh.n_seen.mean()


def test_respond_is_deterministic_for_a_seeded_rng():
    pop, posts, _rng = _world(seed=5)
    pages = np.random.default_rng(9).integers(0, posts.n, (100, 10))
    a = respond(pages, np.arange(100), 0.0, np.random.default_rng(2), pop, posts, update=False)
    b = respond(pages, np.arange(100), 0.0, np.random.default_rng(2), pop, posts, update=False)
    assert np.array_equal(a.events.kind, b.events.kind) and np.array_equal(a.events.ts, b.events.ts)
