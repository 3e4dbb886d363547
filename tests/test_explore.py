"""Exploration (``feed/explore.py``): a stated share of each page for new or uncertain posts, chosen by Thompson
sampling, deterministic under a seed, explained, and off in every preset."""

from __future__ import annotations

import dataclasses
from importlib import resources
from types import SimpleNamespace

import numpy as np
import pytest

from glassfeed.feed.explain import ADJUSTMENT_WORDS
from glassfeed.feed.explore import explore, explore_note, explore_places, explored_items, thompson_draws
from glassfeed.feed.mixing import ADJUSTMENTS, A, assemble_pages
from glassfeed.feed.policy import PolicyError, builtin_policies, describe, load_policy_file
from glassfeed.state import COUNTERS, C

ENGAGEMENT = builtin_policies()["engagement"]


def _policy(share: float, max_impressions: float = 20.0):
    """The engagement preset exploring ``share`` of places, with caps and author diversity out of the way."""
    return dataclasses.replace(
        ENGAGEMENT,
        mixing=ENGAGEMENT.mixing.replace(
            explore_share=share, explore_max_impressions=max_impressions, in_network_share=1.0, out_network_share=1.0
        ),
        adjustments=ENGAGEMENT.adjustments.replace(author_diversity_decay=1.0),
    )


def _state(impressions: np.ndarray, engaged: np.ndarray | None = None) -> SimpleNamespace:
    """What exploration reads of a serving state: the decayed counters of each post (post id = index)."""
    cnt = np.zeros((len(impressions), len(COUNTERS)))
    cnt[:, C["impression"]] = impressions
    if engaged is not None:
        cnt[:, C["like"]] = engaged

    def decayed(posts: np.ndarray, now: float) -> np.ndarray:
        return cnt[posts]

    return SimpleNamespace(counters=SimpleNamespace(decayed=decayed))


def _case(n_users: int = 30, per_user: int = 60, seed: int = 0):
    """``n_users`` pages of ``per_user`` candidates; every third post is new (0 impressions), the rest well seen."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_users), per_user)
    posts = np.arange(n_users * per_user)
    score = rng.random(len(rows))
    imp = np.where(posts % 3 == 0, 0.0, 500.0)
    return rows, posts, score, imp


def _explore(rows, posts, score, imp, policy, limit=20, seed=0):
    deltas = np.zeros((len(rows), len(ADJUSTMENTS)))
    users = np.arange(int(rows.max()) + 1)
    new = explore(_state(imp), users, rows, posts, score, deltas, policy, 1000.0, limit, seed=seed)
    return new, deltas


def test_every_preset_is_off_and_off_changes_nothing():
    for name, pol in builtin_policies().items():
        assert pol.mixing.explore_share == 0.0, name
    rows, posts, score, imp = _case()
    new, deltas = _explore(rows, posts, score, imp, ENGAGEMENT)
    assert np.array_equal(new, score) and not deltas.any()


@pytest.mark.parametrize("share, limit, places", [(0.05, 20, 1), (0.1, 20, 2), (0.1, 30, 3), (0.05, 10, 0)])
def test_exploration_takes_exactly_the_stated_share_of_places(share, limit, places):
    assert explore_places(limit, _policy(share)) == places
    rows, posts, score, imp = _case()
    pol = _policy(share)
    new, deltas = _explore(rows, posts, score, imp, pol, limit)
    sel, final = assemble_pages(rows, new, posts, np.ones(len(rows), bool), limit, pol, deltas)
    on_page = explored_items(deltas[sel])
    assert np.array_equal(np.bincount(rows[sel][on_page], minlength=30), np.full(30, places))
    # explored posts are new ones that would not have made the page on their score
    natural = np.zeros(len(rows), bool)
    for r in range(30):
        m = np.flatnonzero(rows == r)
        natural[m[np.argsort(-score[m])[:limit]]] = True
    explored = sel[on_page]
    assert np.all(imp[explored] < pol.mixing.explore_max_impressions) and not natural[explored].any()
    # the raise is recorded as the exploration adjustment: old score + delta = new score
    assert np.allclose(score + deltas[:, A["exploration"]], new)
    assert np.allclose(new + deltas[:, A["author_diversity"]], final)


def test_explored_posts_land_anywhere_on_the_page():
    rows, posts, score, imp = _case(n_users=200)
    pol = _policy(0.1)
    new, deltas = _explore(rows, posts, score, imp, pol)
    sel, _ = assemble_pages(rows, new, posts, np.ones(len(rows), bool), 20, pol, deltas)
    slot = np.arange(len(sel)) - np.searchsorted(rows[sel], rows[sel])
    at = slot[explored_items(deltas[sel])]
    assert at.min() <= 2 and at.max() >= 17  # a uniform place, not only the top or the bottom


def test_no_eligible_post_means_no_exploration():
    rows, posts, score, _ = _case()
    new, deltas = _explore(rows, posts, score, np.full(len(rows), 500.0), _policy(0.1))
    assert np.array_equal(new, score) and not deltas.any()


def test_deterministic_under_a_seed():
    rows, posts, score, imp = _case()
    pol = _policy(0.1)
    a = _explore(rows, posts, score, imp, pol, seed=7)
    b = _explore(rows, posts, score, imp, pol, seed=7)
    c = _explore(rows, posts, score, imp, pol, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(explored_items(a[1]), explored_items(c[1]))


def test_thompson_sampling_favours_posts_whose_evidence_is_good():
    # three eligible posts with 15 impressions each: 6, 1 and 0 engagements
    st = _state(np.array([15.0, 15.0, 15.0]), np.array([6.0, 1.0, 0.0]))
    rng = np.random.default_rng(0)
    draws = np.stack([thompson_draws(st, np.arange(3), 0.0, _policy(0.1), rng) for _ in range(2000)])
    wins = np.bincount(draws.argmax(1), minlength=3) / 2000
    assert wins[0] > 0.9 and wins[2] < 0.05
    # with no evidence the draw follows the prior: mean explore_prior_rate
    st0 = _state(np.zeros(4000))
    mean = thompson_draws(st0, np.arange(4000), 0.0, _policy(0.1), rng).mean()
    assert mean == pytest.approx(ENGAGEMENT.mixing.explore_prior_rate, abs=0.01)


def test_explained_in_words_and_in_the_policy_statement():
    assert set(ADJUSTMENT_WORDS) == set(ADJUSTMENTS)
    assert ADJUSTMENT_WORDS["exploration"].startswith("shown to help new posts be seen")
    note = explore_note(20, _policy(0.1))
    assert note.startswith("shown to help new posts be seen: 10% of places (2 of 20 here)")
    assert "places on a page (rounded down) go to posts that few people have seen" in describe(_policy(0.1))
    assert "Thompson sampling" not in describe(ENGAGEMENT)


def test_policy_bounds_are_checked(tmp_path):
    with pytest.raises(ValueError):
        ENGAGEMENT.mixing.replace(explore_share=0.6)
    with pytest.raises(ValueError):
        ENGAGEMENT.mixing.replace(explore_prior_rate=1.0)
    src = resources.files("glassfeed").joinpath("policies/chronological.toml").read_text("utf-8")
    path = tmp_path / "chrono.toml"
    path.write_text(src.replace("explore_share = 0.0", "explore_share = 0.1"))
    with pytest.raises(PolicyError, match=r"^chrono\.toml: \[mixing\] explore_share: must be 0 when ranker"):
        load_policy_file(path)


def test_served_pages_explore_and_explain_it(fresh_feed):
    svc, _ = fresh_feed
    svc.policies["explore"] = dataclasses.replace(
        svc.policies["engagement"], name="explore", mixing=svc.policies["engagement"].mixing.replace(explore_share=0.1)
    )
    st = svc.state
    uid = next(
        st.users.id_of(u)
        for u in range(1, st.n_users + 1)
        if len(st.graph.following(u)) >= 10 and st.counters.events(np.array([u]))[0] > 50
    )
    page = svc.feed(uid, policy="explore", limit=30, log_impressions=False)
    explored = [it for it in page["items"] if any(a["name"] == "exploration" for a in it["adjustments"])]
    assert 1 <= len(explored) <= 3
    for it in explored:
        assert it["placement"].startswith("shown to help new posts be seen: 10% of places (3 of 30 here)")
        why = svc.why(uid, it["post"])
        total = sum(c["contribution"] for c in why["contributions"]) + sum(a["delta"] for a in why["adjustments"])
        assert total == pytest.approx(why["score"], rel=1e-9, abs=1e-12)
    again = svc.feed(uid, policy="explore", limit=30, log_impressions=False)
    assert [it["post"] for it in again["items"]] == [it["post"] for it in page["items"]]  # same request, same page
