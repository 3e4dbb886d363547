"""Breadth (``feed/breadth.py``): each page chosen to match the person's topic mix (Steck 2018's calibrated greedy),
on hand-made cases and on the trained network: a 70/30 history gets a page near 70/30, λ = 0 changes nothing, ties
are deterministic, a batch gives each user their own page, and every placed post is explained."""

from __future__ import annotations

import dataclasses
from importlib import resources

import numpy as np
import pytest

from glassfeed.audit.metrics import topic_entropy
from glassfeed.feed.breadth import (
    assemble_breadth_pages,
    breadth_items,
    breadth_notes,
    calibrated_order,
    categories,
    raise_to_order,
    target_mix,
)
from glassfeed.feed.explain import ADJUSTMENT_WORDS
from glassfeed.feed.mixing import ADJUSTMENTS, A, assemble_pages
from glassfeed.feed.pipeline import rank
from glassfeed.feed.policy import PolicyError, builtin_policies, describe, load_policy_file

BREADTH = builtin_policies()["breadth"]


def _policy(calibration: float, caps: float = 1.0, diversity: bool = False, pool: int = 100, order: str = "greedy"):
    """The breadth preset with ``calibration``, the caps at ``caps``, author diversity on or off and the page in
    ``order`` (greedy by default, whatever the preset ships, so that the hand-made cases test the greedy itself)."""
    return dataclasses.replace(
        BREADTH,
        breadth=BREADTH.breadth.replace(calibration=calibration, pool=pool, order=order),
        mixing=BREADTH.mixing.replace(in_network_share=caps, out_network_share=caps),
        adjustments=BREADTH.adjustments.replace(author_diversity_decay=0.5 if diversity else 1.0),
    )


def _seventy_thirty(n: int = 60):
    """One person whose mix is 70% topic 0 and 30% topic 1; every topic-0 post scores above every topic-1 post."""
    score = np.r_[np.linspace(1.0, 0.8, n), np.linspace(0.79, 0.6, n)]
    cat = np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)]
    target = np.array([[0.7, 0.3, 0.0]])  # topics 0 and 1, then "no topic"
    return np.zeros(2 * n, np.int64), cat, score, target


def _pages(rows, cat, score, target, policy, limit=20, authors=None, in_net=None):
    deltas = np.zeros((len(rows), len(ADJUSTMENTS)))
    authors = np.arange(len(rows)) if authors is None else authors
    in_net = np.ones(len(rows), bool) if in_net is None else in_net
    sel, final = assemble_breadth_pages(rows, cat, score, authors, in_net, target, limit, policy, deltas)
    return sel, final, deltas


def _random_case(n_users: int = 40, seed: int = 0):
    """Users with 30-150 candidates each over 6 topics (some without one), repeated authors, both sides."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(30, 150, n_users)
    rows = np.repeat(np.arange(n_users), sizes)
    n = len(rows)
    cat = rng.integers(0, 7, n)  # column 6 is "no topic"
    score = rng.gamma(2.0, 1.0, n) - 0.3 + 0.5 * (cat == 0)
    authors = rng.integers(0, 25, n)
    in_net = rng.random(n) < 0.6
    target = np.c_[rng.dirichlet(np.full(6, 0.5), n_users), np.zeros(n_users)]
    target[3] = 0.0  # someone with no mix: the score's order
    return rows, cat, score, authors, in_net, target


def test_a_seventy_thirty_history_gets_a_page_near_seventy_thirty():
    rows, cat, score, target = _seventy_thirty()
    share = {}
    for lam in (0.0, 0.5, 0.9):
        sel, final, deltas = _pages(rows, cat, score, target, _policy(lam))
        assert len(sel) == 20
        share[lam] = float(np.mean(cat[sel] == 1))
        assert np.all(np.diff(final[sel]) < 0)  # the page is in score order, after the raises
        assert np.allclose(score + deltas.sum(axis=1), final)
    assert share[0.0] == 0.0  # by score alone: 100/0
    assert 0.25 <= share[0.5] <= 0.35 and 0.25 <= share[0.9] <= 0.35  # close to 70/30
    # the topic-1 posts on the page were placed above higher-scoring topic-0 posts: that is their breadth raise
    sel, final, deltas = _pages(rows, cat, score, target, _policy(0.5))
    raised = sel[breadth_items(deltas[sel])]
    assert len(raised) and np.all(cat[raised] == 1)
    assert not breadth_items(deltas[sel[cat[sel] == 0]]).any()
    assert np.allclose(score[raised] + deltas[raised, A["breadth"]], final[raised])


def test_score_order_puts_the_chosen_posts_in_score_order_below_those_that_outscored_them():
    rows, cat, score, target = _seventy_thirty()
    pol = _policy(0.5)
    greedy = _pages(rows, cat, score, target, pol)
    by_score = _pages(rows, cat, score, target, dataclasses.replace(pol, breadth=pol.breadth.replace(order="score")))
    assert set(by_score[0].tolist()) == set(greedy[0].tolist())  # the same posts ...
    assert not np.array_equal(by_score[0], greedy[0])  # ... in another order
    sel, final, deltas = by_score
    assert np.all(np.diff(final[sel]) < 0)  # still the final scores' order
    assert np.allclose(score + deltas.sum(axis=1), final)  # and the explanation invariant
    # every topic-0 post (they all outscore topic 1) is above every topic-1 post, which keep their own order
    k = int((cat[sel] == 0).sum())
    assert 0 < k < 20 and np.all(cat[sel[:k]] == 0) and np.all(cat[sel[k:]] == 1)
    assert np.all(np.diff(score[sel[k:]]) < 0)
    # the topic-1 posts were still placed above higher-scoring topic-0 posts left off the page, and only they were
    raised = sel[breadth_items(deltas[sel])]
    assert len(raised) and np.all(cat[raised] == 1)
    assert final[sel[k:]].min() > score[np.setdiff1d(np.flatnonzero(cat == 0), sel)].max()
    # and the greedy's page is unchanged by the key's existence: λ 0 gives assemble_pages' page in either order
    off = _pages(
        rows,
        cat,
        score,
        target,
        dataclasses.replace(_policy(0.0), breadth=pol.breadth.replace(calibration=0.0, order="score")),
    )
    want_d = np.zeros((len(rows), len(ADJUSTMENTS)))
    want_sel, _ = assemble_pages(rows, score, np.arange(len(rows)), np.ones(len(rows), bool), 20, _policy(0.0), want_d)
    assert np.array_equal(off[0], want_sel)


def test_too_divisive_posts_are_never_placed_for_breadth(trained_feed):
    svc, _ = trained_feed
    st, now = svc.state, svc.now()
    posts = np.arange(1, st.posts.n + 1)
    div = st.posts.divisiveness(posts)
    assert (div > 0.5).any() and (div <= 0.5).any()
    plain, capped = categories(st, posts), categories(st, posts, 0.5)
    none = len(st.topics)
    assert np.array_equal(capped[div <= 0.5], plain[div <= 0.5])
    assert np.all(capped[div > 0.5] == none)
    # in the pipeline: with the cap, no post above it is raised for breadth, and some are without it
    users = np.array([u for u in range(1, st.n_users + 1) if len(st.graph.following(u)) >= 3][:40])
    raised_div = {}
    for cap in (1.0, 0.3):
        pol = dataclasses.replace(BREADTH, breadth=BREADTH.breadth.replace(max_divisiveness=cap, pool=150))
        pg = rank(st, svc.models, users, pol, now, 30)
        raised = pg.post[breadth_items(pg.deltas)]
        assert len(raised)
        raised_div[cap] = st.posts.divisiveness(raised)
        # the shipped order is by score: a post raised only to stay above a placed one has a placed one below it
        kept = pg.deltas[:, A["breadth_order"]] > 0
        for r in np.unique(pg.row[kept]):
            on = np.flatnonzero(pg.row == r)
            placed_at = on[breadth_items(pg.deltas[on])]
            assert np.all(np.flatnonzero(kept[on]) < (placed_at.max() - on[0]))
    assert raised_div[0.3].max() <= 0.3 < raised_div[1.0].max()


def test_calibration_narrows_the_gap_to_the_person_mix_on_many_pages():
    rows, cat, score, authors, in_net, target = _random_case(200)

    def kl(sel):
        q = np.zeros_like(target)
        np.add.at(q, (rows[sel], cat[sel]), 1.0)
        q = 0.99 * q / q.sum(1, keepdims=True) + 0.01 * target
        has = target > 0
        return np.where(has, target * np.log(np.where(has, target, 1) / np.where(has, q, 1)), 0).sum(1)

    off = _pages(rows, cat, score, target, _policy(0.0), authors=authors, in_net=in_net)[0]
    on = _pages(rows, cat, score, target, _policy(0.5), authors=authors, in_net=in_net)[0]
    known = target.sum(1) > 0
    assert kl(on)[known].mean() < 0.5 * kl(off)[known].mean()
    # calibration, not diversity for its own sake: here the scores spread topics evenly and the people's mixes are
    # concentrated, so the calibrated pages are narrower than the score's
    counts = [np.zeros((200, 7)) for _ in range(2)]
    for c, sel in zip(counts, (off, on), strict=True):
        np.add.at(c, (rows[sel], cat[sel]), 1.0)
    gap = [np.abs(c[known] / c[known].sum(1, keepdims=True) - target[known]).sum(1).mean() for c in counts]
    assert gap[1] < 0.6 * gap[0]


def test_lambda_zero_leaves_the_ranking_unchanged():
    rows, cat, score, authors, in_net, target = _random_case()
    for caps, pool in ((0.6, 100), (0.6, 15), (1.0, 100), (0.3, 40)):
        pol = _policy(0.0, caps=caps, diversity=True, pool=pool)
        want_d = np.zeros((len(rows), len(ADJUSTMENTS)))
        want_sel, want_final = assemble_pages(rows, score, authors, in_net, 20, pol, want_d)
        sel, final, deltas = _pages(rows, cat, score, target, pol, authors=authors, in_net=in_net)
        assert np.array_equal(sel, want_sel) and np.array_equal(final, want_final), (caps, pool)
        assert np.array_equal(deltas, want_d) and not breadth_items(deltas).any()
    # and in the pipeline: the preset with calibration 0 is the stated-preference ranking, item for item
    assert BREADTH.weights == builtin_policies()["stated_preference"].weights


def test_caps_hold_and_a_person_without_a_mix_keeps_the_score_order():
    rows, cat, score, authors, in_net, target = _random_case()
    pol = _policy(0.7, caps=0.6, diversity=True)
    sel, _, deltas = _pages(rows, cat, score, target, pol, authors=authors, in_net=in_net)
    for r in range(len(target)):
        m = sel[rows[sel] == r]
        n_in, n_out = int(in_net[m].sum()), int((~in_net[m]).sum())
        have_in, have_out = int(in_net[rows == r].sum()), int((~in_net[rows == r]).sum())
        assert len(m) == 20
        if have_in >= 12 and have_out >= 12:  # both sides can fill their places: the caps hold exactly
            assert n_in <= 12 and n_out <= 12
    off_d = np.zeros((len(rows), len(ADJUSTMENTS)))
    off_sel, _ = assemble_pages(rows, score, authors, in_net, 20, pol, off_d)
    assert np.array_equal(sel[rows[sel] == 3], off_sel[rows[off_sel] == 3])  # row 3 has no mix
    assert not breadth_items(deltas[rows == 3]).any()


def test_ties_are_deterministic():
    # equal scores everywhere: the greedy and the page order fall back to the lower index
    rows = np.zeros(40, np.int64)
    cat = np.r_[np.zeros(20, np.int64), np.ones(20, np.int64)]
    score = np.ones(40)
    target = np.array([[0.5, 0.5, 0.0]])
    a = _pages(rows, cat, score, target, _policy(0.5), limit=10)
    b = _pages(rows, cat, score, target, _policy(0.5), limit=10)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].tolist() == [0, 20, 1, 21, 2, 22, 3, 23, 4, 24]
    assert np.all(np.diff(a[1][a[0]]) < 0)
    # the greedy alone: ties go to the higher score, then to the lower index
    picks = calibrated_order(rows, cat, score, target, 10, 0.0, 0.01, 100)
    assert picks[0].tolist() == list(range(10))


def test_raise_keeps_picks_in_place_and_lifts_only_what_must_move():
    rows = np.zeros(5, np.int64)
    score = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    new, placed = raise_to_order(rows, score, np.array([[0, 1, 2]]))  # already in order
    assert np.array_equal(new, score) and np.array_equal(placed, score)
    new, placed = raise_to_order(rows, score, np.array([[0, 3, 1]]))  # post 3 placed second, above 1 and 2 (left off)
    assert new[0] == 5.0 and new[1] == 4.0 and new[3] == np.nextafter(4.0, np.inf)
    assert new[2] == 3.0 and new[4] == 1.0  # candidates left off keep their scores
    assert np.array_equal(placed, new)  # every raise here is a placement: post 3 went above higher-scoring posts
    new, placed = raise_to_order(rows, score, np.array([[4, 0]]))  # post 4 first, above everything
    assert new[4] == np.nextafter(5.0, np.inf) and new[0] == 5.0 and np.array_equal(placed, new)


def test_a_raise_that_only_keeps_a_post_above_a_placed_one_is_told_apart():
    """Score order with two sides: post 2 (side 0) is placed for breadth above post 0, left off; post 1 (side 1, no
    room for side 0's posts) outscored post 2 and stays above it, so it is raised with it, but it displaced nothing:
    its raise is the chain's (``breadth_order``), not a placement (``breadth``)."""
    rows = np.zeros(4, np.int64)
    score = np.array([9.0, 5.0, 4.0, 1.0])
    side = np.array([0, 1, 0, 1])
    room = np.array([[0, 1]])  # side 0 is full; side 1 has a place left
    new, placed = raise_to_order(rows, score, np.array([[1, 2]]), side, room)
    assert new[2] == np.nextafter(9.0, np.inf) and placed[2] == new[2]  # placed above post 0
    assert new[1] == np.nextafter(new[2], np.inf) and placed[1] == 5.0  # raised only to stay above post 2
    assert new[0] == 9.0 and new[3] == 1.0


def test_a_batch_gives_each_user_the_page_of_a_call_for_that_user_alone():
    rows, cat, score, authors, in_net, target = _random_case(30, seed=3)
    pol = _policy(0.5, caps=0.6, diversity=True, pool=60)
    sel, final, deltas = _pages(rows, cat, score, target, pol, authors=authors, in_net=in_net)
    for r in range(30):
        m = np.flatnonzero(rows == r)
        one = _pages(rows[m] * 0, cat[m], score[m], target[r : r + 1], pol, authors=authors[m], in_net=in_net[m])
        assert np.array_equal(m[one[0]], sel[rows[sel] == r])
        assert np.array_equal(one[1], final[m]) and np.array_equal(one[2], deltas[m])


def test_target_mix_blends_engagement_with_what_the_person_chose(trained_feed):
    svc, _ = trained_feed
    st, now = svc.state, svc.now()
    users = np.arange(1, st.n_users + 1)
    cutoff = now - BREADTH.filters.max_age_hours * 3600.0
    mix = target_mix(st, users, now, cutoff, 10.0)
    n_topics = len(st.topics)
    assert mix.shape == (len(users), n_topics + 1) and np.all(mix[:, -1] == 0.0)
    assert np.allclose(mix.sum(1)[mix.sum(1) > 0], 1.0) and (mix.sum(1) > 0).mean() > 0.9
    # prior_strength 0: the share of the decayed positive engagement alone
    engaged = target_mix(st, users, now, cutoff, 0.0)
    prof = st.counters.topic_profiles(users, n_topics)
    some = prof.sum(1) > 0
    assert np.allclose(engaged[some, :-1], prof[some] / prof[some].sum(1, keepdims=True))
    # a batch is the same as one user at a time
    for i in (0, 7, len(users) - 1):
        assert np.array_equal(target_mix(st, users[i : i + 1], now, cutoff, 10.0)[0], mix[i])
    # the stronger the prior, the broader the mix (what people pick and follow spans more than a few likes)
    strong = target_mix(st, users, now, cutoff, 100.0)
    assert np.nanmean(topic_entropy(strong[:, :-1], normalise=True)) > np.nanmean(
        topic_entropy(engaged[some, :-1], normalise=True)
    )


def test_breadth_pages_are_explained_and_add_up(trained_feed):
    svc, _ = trained_feed
    st = svc.state
    users = [
        st.users.id_of(u)
        for u in range(1, st.n_users + 1)
        if len(st.graph.following(u)) >= 10 and st.counters.events(np.array([u]))[0] > 50
    ][:10]
    placed = 0
    for uid in users:
        page = svc.feed(uid, policy="breadth", limit=30, log_impressions=False)
        for it in page["items"]:
            why = svc.why(uid, it["post"])
            total = sum(c["contribution"] for c in why["contributions"]) + sum(a["delta"] for a in why["adjustments"])
            assert total == pytest.approx(why["score"], rel=1e-9, abs=1e-12)
            names = [a["name"] for a in it["adjustments"]]
            if "breadth" in names:
                placed += 1
                assert it["placement"].startswith("placed for breadth: #")
                assert "% of what you engage with" in it["placement"]
                assert why["placement"] == it["placement"]
            else:
                assert not (it["placement"] or "").startswith("placed for breadth")
        scores = [it["score"] for it in page["items"]]
        assert scores == sorted(scores, reverse=True)
    assert placed > 0  # the stage moved some posts on these pages


def test_rank_batch_equals_single_users_with_breadth(trained_feed):
    svc, _ = trained_feed
    st, models, now = svc.state, svc.models, svc.now()
    users = np.array([u for u in range(1, st.n_users + 1) if len(st.graph.following(u)) >= 3][:12])
    batch = rank(st, models, users, BREADTH, now, 20)
    assert breadth_items(batch.deltas).any()
    for r, u in enumerate(users.tolist()):
        one = rank(st, models, np.array([u]), BREADTH, now, 20)
        m = batch.for_row(r)
        assert np.array_equal(one.post, batch.post[m]) and np.allclose(one.score, batch.score[m], rtol=1e-12)


def test_notes_name_the_topic_and_the_person_share(trained_feed):
    svc, _ = trained_feed
    st, now = svc.state, svc.now()
    u = next(u for u in range(1, st.n_users + 1) if st.counters.topic_engagements(np.array([u]))[0] > 5)
    pg = rank(st, svc.models, np.array([u]), BREADTH, now, 30)
    notes = breadth_notes(st, u, pg.post, pg.deltas, BREADTH, now)
    assert set(notes) == set(np.flatnonzero(breadth_items(pg.deltas)).tolist())
    mix = target_mix(st, np.array([u]), now, now - 168 * 3600.0, BREADTH.breadth.prior_strength)[0]
    for i, text in notes.items():
        t = int(categories(st, pg.post[i : i + 1])[0])
        assert text.startswith(f"placed for breadth: #{st.topics.name(t)} is about {100 * mix[t]:.0f}%")


def test_the_policy_parses_describes_itself_and_is_off_elsewhere(tmp_path):
    assert BREADTH.breadth.calibration > 0 and BREADTH.ranker == "heads"
    text = describe(BREADTH)
    assert "- Breadth: each page is put together to match the mix of topics you engage with" in text
    assert f"set to {BREADTH.breadth.calibration:g}" in text and "Steck 2018" in text
    for name, pol in builtin_policies().items():
        if name != "breadth":
            assert pol.breadth.calibration == 0.0, name
            assert "Breadth:" not in describe(pol), name
    assert ADJUSTMENT_WORDS["breadth"].startswith("placed for breadth")
    # the two optional rules are stated only when they are on
    for order, cap in (("greedy", 1.0), ("score", 0.5)):
        pol = dataclasses.replace(BREADTH, breadth=BREADTH.breadth.replace(order=order, max_divisiveness=cap))
        text = describe(pol)
        assert ("shown in the order of the scores" in text) == (order == "score")
        assert ("(divisiveness above 0.5 on a 0-1 scale) are never put on a page for breadth" in text) == (cap < 1)
    # chronological stays newest first: the stage is refused there
    src = resources.files("glassfeed").joinpath("policies/chronological.toml").read_text("utf-8")
    path = tmp_path / "chrono.toml"
    for old, new, error in (
        ("calibration = 0.0", "calibration = 0.5", r"calibration: must be 0 when ranker"),
        ("calibration = 0.0", "calibration = 1.0", r"calibration: .*less than 1"),
        ("pool = 100 ", "# pool = 100 ", r"pool: Field required"),
        ('order = "greedy"', 'order = "topics"', r"order: Input should be 'greedy' or 'score'"),
        ("max_divisiveness = 1.0", "max_divisiveness = 0.0", r"max_divisiveness: .*greater than 0"),
    ):
        path.write_text(src.replace(old, new))
        with pytest.raises(PolicyError, match=r"^chrono\.toml: \[breadth\] " + error):
            load_policy_file(path)
