"""The synthetic network: determinism, the output contract's invariants, homophily and heavy tails."""

import numpy as np
import pytest

from glassfeed.domain import EVENT_COLUMNS, EventBatch, EventKind
from glassfeed.sim.generate import DEFAULT_START_TS, GeneratorParams, generate_network
from glassfeed.sim.population import Population, sample_follow_graph

N_USERS, DAYS, SEED = 300, 3, 11


@pytest.fixture(scope="module")
def net():
    return generate_network(N_USERS, DAYS, SEED)


def test_same_seed_same_network_other_seed_differs(net):
    again = generate_network(N_USERS, DAYS, SEED)
    for name, value in vars(net).items():
        other = getattr(again, name)
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, other, equal_nan=value.dtype.kind == "f"), name
        elif isinstance(value, EventBatch):
            assert value.equals(other), name
        else:
            assert value == other, name
    different = generate_network(N_USERS, DAYS, SEED + 1)
    assert not np.array_equal(different.post_author[:50], net.post_author[:50])


def test_contract_shapes_and_dtypes(net):
    n, p, e = net.n_users, net.n_posts, net.n_events
    assert n == N_USERS and net.days == DAYS and net.seed == SEED and net.start_ts == DEFAULT_START_TS
    assert len(net.topics) == 20 and "politics" in net.topics
    assert net.user_interests.shape == (n, 20) and net.user_interests.dtype == np.float32
    assert np.all(net.user_interests >= 0) and np.allclose(net.user_interests.sum(1), 1, atol=1e-5)
    assert net.user_community.dtype == np.int16 and net.user_leaning.dtype == np.float32
    assert np.all(np.abs(net.user_leaning) <= 1) and np.all(net.user_activity > 0)
    assert np.all(net.user_created < net.start_ts)
    for arr, dt in [
        (net.post_author, np.int32),
        (net.post_created, np.float64),
        (net.post_topic, np.int16),
        (net.post_quality, np.float32),
        (net.post_divisiveness, np.float32),
        (net.post_reply_to, np.int32),
    ]:
        assert arr.shape == (p,) and arr.dtype == dt
    assert len(net.post_text) == p and all(isinstance(t, str) and t for t in net.post_text)
    assert np.all((net.post_quality >= 0) & (net.post_quality <= 1))
    assert np.all((net.post_divisiveness >= 0) & (net.post_divisiveness <= 1))
    assert isinstance(net.events, EventBatch) and len(net.events) == e
    for c in EVENT_COLUMNS:
        arr = getattr(net.events, c.name)
        assert arr.shape == (e,) and arr.dtype == c.dtype
    assert np.all(net.events.seq == 0)  # not stored
    assert net.events.surface is None and net.events.request_id is None and net.events.id is None
    assert set(np.unique(net.events.kind)) <= {int(k) for k in EventKind}


def test_event_invariants(net):
    k, ts = net.events.kind, net.events.ts
    assert np.all(np.diff(ts) >= 0)
    assert ts[0] >= net.start_ts and ts[-1] < net.start_ts + DAYS * 86400  # the history ends where it says
    assert net.post_created.max() < net.start_ts + DAYS * 86400
    on_post = net.events.post >= 0
    post = net.events.post[on_post]
    assert post.max() < net.n_posts
    assert np.all(net.post_created[post] < ts[on_post])  # post existed before the event
    assert np.all(net.post_author[post] != net.events.user[on_post])  # nobody engages with their own posts
    assert np.all(net.user_created[net.events.user] < ts)
    likes = k == EventKind.LIKE
    key = net.events.user[likes].astype(np.int64) * net.n_posts + net.events.post[likes]
    assert len(np.unique(key)) == len(key) > 0  # no duplicate likes
    follow = k == EventKind.FOLLOW
    assert np.all(net.events.post[follow] == -1) and np.all(net.events.target_user[follow] >= 0)
    assert np.all(net.events.target_user[~follow] == -1) and np.all(on_post == ~follow)
    dwell = k == EventKind.DWELL
    assert np.all(net.events.value[dwell] > 0) and np.all(np.isnan(net.events.value[~dwell]))
    assert np.all(net.events.position[on_post] >= 0) and np.all(net.events.position[follow] == -1)
    counts = {kind: int((k == kind).sum()) for kind in EventKind}
    assert counts[EventKind.IMPRESSION] > counts[EventKind.CLICK] > counts[EventKind.REPOST] > 0
    assert counts[EventKind.CLICK] == counts[EventKind.DWELL]
    assert counts[EventKind.REPLY] > 0 and counts[EventKind.LIKE] > 0


def test_posts_and_replies(net):
    assert np.all(np.diff(net.post_created) >= 0)
    assert np.all(net.user_created[net.post_author] < net.post_created)
    rep = np.nonzero(net.post_reply_to >= 0)[0]
    assert len(rep) > 0
    parent = net.post_reply_to[rep]
    assert np.all(parent < rep) and np.all(net.post_created[parent] < net.post_created[rep])
    assert all(net.post_text[i].startswith("@user") for i in rep[:20])
    # divisiveness tracks political topics and extreme authors
    politics = net.post_topic == net.topics.index("politics")
    assert net.post_divisiveness[politics].mean() > net.post_divisiveness[~politics].mean() + 0.2
    extreme = np.abs(net.user_leaning[net.post_author]) > 0.6
    assert net.post_divisiveness[extreme].mean() > net.post_divisiveness[~extreme].mean()


def test_follow_graph_homophily(net):
    c = net.user_community
    within = np.mean(c[net.follow_src] == c[net.follow_dst])
    shares = np.bincount(c) / len(c)
    assert within > 2 * np.sum(shares**2)
    assert np.all(net.follow_src != net.follow_dst)
    key = net.follow_src.astype(np.int64) * net.n_users + net.follow_dst
    assert len(np.unique(key)) == len(key)
    assert np.all(net.follow_created < net.start_ts)
    assert np.all(net.follow_created >= np.maximum(net.user_created[net.follow_src], net.user_created[net.follow_dst]))


def test_follower_counts_are_heavy_tailed():
    rng = np.random.default_rng(0)
    pop = Population.sample(3000, rng)
    _src, dst = sample_follow_graph(pop, rng, mean_following=30)
    followers = np.bincount(dst, minlength=3000)
    assert followers.max() > 10 * np.median(followers)
    top1 = np.sort(followers)[-30:].sum() / followers.sum()
    assert top1 > 0.05  # the top 1% of accounts hold well over 1% of follows


def test_engagement_rewards_authors_with_more_posting():
    rng = np.random.default_rng(1)
    pop = Population.sample(50, rng)
    before = pop.posting_rates(0.0).copy()
    pop.reward_authors(np.array([3, 3, 7]), 10.0, 0.0)
    after = pop.posting_rates(0.0)
    assert after[3] > after[7] > before[7] and np.allclose(np.delete(after, [3, 7]), np.delete(before, [3, 7]))
    later = pop.posting_rates(30 * 86400.0)
    assert later[3] < after[3]  # the reward decays


def test_revealed_engagement_favours_divisive_posts(net):
    imp = net.events.kind == EventKind.IMPRESSION
    clk = net.events.kind == EventKind.CLICK
    div = net.post_divisiveness
    hi = div > 0.5
    post = net.events.post
    ctr_hi = np.isin(post[clk], np.nonzero(hi)[0]).sum() / np.isin(post[imp], np.nonzero(hi)[0]).sum()
    ctr_lo = np.isin(post[clk], np.nonzero(~hi)[0]).sum() / np.isin(post[imp], np.nonzero(~hi)[0]).sum()
    assert ctr_hi > ctr_lo


def test_params_change_the_world():
    params = GeneratorParams(start_ts=0.0, page_len=5)
    seen = []
    small = generate_network(100, 1, 3, params, progress=lambda stage, frac: seen.append((stage, frac)))
    assert ("browsing", 1.0) in seen and seen[-1] == ("finishing", 1.0)
    assert small.start_ts == 0.0 and small.events.ts.min() >= 0.0
    on_post = small.events.position >= 0
    assert small.events.position[on_post].max() < 5


def test_simulator_can_recreate_the_latent_population(net):
    pop = Population.sample(N_USERS, np.random.default_rng(SEED), GeneratorParams().population, DEFAULT_START_TS)
    assert np.array_equal(pop.interests, net.user_interests) and np.array_equal(pop.leaning, net.user_leaning)
    assert np.array_equal(pop.created, net.user_created)


def test_a_session_begun_late_in_the_last_slot_stops_at_the_end_of_the_history():
    """Seed 22 at 500 people x 7 days once ended with a session whose events ran 680 s past the history's end, which
    an Ingestor whose clock is at that end (the simulator's) refuses as from the future."""
    late = generate_network(500, 7, 22)
    end = late.start_ts + 7 * 86400
    # cut at the end, not before it: sessions late in the last slot keep what they did before the end. (On the host
    # that found the bug the last event fell within a minute of the end; on another CPU the same seed's last session
    # comes out otherwise, its last event 99 s before the end: the generator's floating point is not bit-identical
    # across machines and library builds.)
    assert late.events.ts.max() < end and late.events.ts.max() > end - 3600
