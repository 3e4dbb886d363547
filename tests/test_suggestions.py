"""People you may know, without a server: the generators' scores on a hand-made graph, exclusions, contacts only
with both opt-ins, explanations from the feature values, policies as data (unknown keys refused naming them), the
bridging share, the head's scikit-learn conventions, and the link-prediction runner on Last.fm (skipped without
the data)."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from glassfeed.evaluate import datasets
from glassfeed.feed.policy import PolicyError
from glassfeed.suggest import generators as gen
from glassfeed.suggest.explain import reasons, sentence
from glassfeed.suggest.graph import build, contact_hash, contact_pairs
from glassfeed.suggest.model import FollowModel, holdout_examples
from glassfeed.suggest.policy import builtin_policies, load_model_settings, parse_policy

#     1 -> 2, 1 -> 3;  2 -> 4, 3 -> 4, 3 -> 5, 2 -> 6;  6 -> 1;  7 -> 1, 7 -> 4
SRC = np.array([1, 1, 2, 3, 3, 2, 6, 7, 7])
DST = np.array([2, 3, 4, 4, 5, 6, 1, 1, 4])


def _graph(**kw):
    base = {
        "engaged_users": np.array([1, 1, 5, 6, 6]),
        "engaged_items": np.array([0, 1, 0, 0, 1]),
        "community": np.array([-1, 0, 0, 0, 1, 0, 1, 1]),
    }
    return build(8, SRC, DST, **{**base, **kw})


def _score(s, r, c):
    return float(s[r, c])


def test_generators_score_what_their_definitions_say():
    g = _graph()
    s = gen.generator_scores(g, np.array([1]))
    deg = g.neighbour_degree  # 2: {1, 4, 6}; 3: {1, 4, 5}
    assert _score(s["common_neighbours"], 0, 4) == 2  # via 2 and 3
    assert _score(s["common_neighbours"], 0, 6) == 1
    assert math.isclose(_score(s["adamic_adar"], 0, 4), 1 / math.log(deg[2]) + 1 / math.log(deg[3]))
    assert math.isclose(_score(s["resource_allocation"], 0, 4), 1 / deg[2] + 1 / deg[3])
    assert _score(s["follows_you"], 0, 7) == 1 and _score(s["follows_you"], 0, 6) == 1
    assert _score(s["co_followed"], 0, 4) == 1  # 7 follows both 1 and 4
    assert _score(s["co_engaged"], 0, 6) == 2 and _score(s["co_engaged"], 0, 5) == 1
    assert _score(s["co_engagement"], 0, 6) > _score(s["co_engagement"], 0, 5)  # two shared items beat one
    assert _score(s["community"], 0, 5) > 0 and _score(s["community"], 0, 4) == 0  # 5 shares community 0


def test_never_self_followed_or_hidden():
    g = _graph(hidden=(np.array([1, 1]), np.array([4, 7])))  # 1 blocked/muted 4, or 4/7 block 1
    c = gen.candidates(g, np.array([1, 2]), dict.fromkeys(gen.GENERATORS, 100))
    for r, u in enumerate([1, 2]):
        got = set(c.cand[c.row == r].tolist())
        follows = set(DST[u == SRC].tolist())
        assert u not in got and not got & follows
    assert not {4, 7} & set(c.cand[c.row == 0].tolist())


def test_ties_break_to_more_followers_then_lower_idx():
    rows, cols, _ = gen.rank_pairs(
        np.array([0, 0, 0, 1]), np.array([5, 3, 9, 2]), np.array([1.0, 1.0, 1.0, 2.0]), 2, np.arange(10.0) % 4
    )
    assert rows.tolist() == [0, 0, 1] and cols.tolist() == [3, 5, 2]  # 3 and 5 have 3 and 1 followers; 9 has 1


def test_contacts_need_both_opt_ins():
    a, b, c = contact_hash("Alice@example.org "), contact_hash("bob@example.org"), contact_hash("+44 7000")
    assert a == contact_hash("alice@example.org")
    prefs = [
        (1, {"opt_in": True, "own": [a], "hashes": [b, c]}),
        (2, {"opt_in": True, "own": [b], "hashes": []}),
        (3, {"opt_in": False, "own": [c], "hashes": [a]}),  # 3 did not opt in: neither matched nor matchable
    ]
    src, dst = contact_pairs(prefs)
    assert list(zip(src.tolist(), dst.tolist())) == [(1, 2)]
    g2 = build(4, np.array([3]), np.array([1]), contacts=(src, dst))
    c2 = gen.candidates(g2, np.array([1, 3]), {"contacts": 10})
    assert c2.cand[c2.row == 0].tolist() == [2] and c2.cand[c2.row == 1].tolist() == []


def test_explanations_use_the_pair_feature_values():
    g = _graph()
    c = gen.candidates(g, np.array([1]), dict.fromkeys(gen.GENERATORS, 100))
    by = {int(v): sentence(reasons(c.X[i], c.found_by[i])) for i, v in enumerate(c.cand.tolist())}
    assert by[4].startswith("2 people you follow follow them")
    assert "1 person who follows you also follows them" in by[4]
    assert by[7].startswith("Follows you; you don't follow them back")
    assert "you both engaged with 2 of the same posts" in by[6]
    assert "in your community" in by[5]
    assert all(by.values())


def test_policies_are_data_and_unknown_keys_are_refused_by_name():
    pols = builtin_policies()
    assert set(pols) >= {"growth", "bridging"}
    assert pols["bridging"].mix.cross_community_share > 0 and pols["growth"].mix.cross_community_share == 0
    text = resources.files("glassfeed").joinpath("policies", "suggestions", "growth.toml").read_text("utf-8")
    with pytest.raises(PolicyError, match=r"growth.toml: \[mix\] cross_share: unknown key"):
        parse_policy(text.replace("cross_community_share", "cross_share"), "growth.toml")
    with pytest.raises(PolicyError, match=r"\[candidates\] friends: unknown key"):
        parse_policy(text.replace("[candidates]\n", "[candidates]\nfriends = 3\n"), "growth.toml")
    with pytest.raises(PolicyError, match=r"\[ranking\] by"):
        parse_policy(text.replace('by = "learned"', 'by = "magic"'), "growth.toml")
    assert pols["bridging"].mix.reserved(10) == 3 and pols["growth"].mix.reserved(10) == 0


def test_head_follows_sklearn_conventions_and_learns_a_signal():
    rng = np.random.default_rng(0)
    X = rng.random((2000, len(gen.FEATURES)))
    y = (X[:, 0] + 0.1 * rng.random(2000) > 0.8).astype(float)
    params = load_model_settings().lightgbm.model_copy(update={"rounds": 30, "min_data_in_leaf": 5})
    m = FollowModel(params)
    assert not hasattr(m, "booster_")
    assert m.fit(X, y) is m and m.n_train_ == 2000 and m.features_ == gen.FEATURES
    p = m.predict(X)
    assert p[y == 1].mean() > p[y == 0].mean() + 0.5
    with pytest.raises(ValueError, match="both"):
        FollowModel(params).fit(X, np.zeros(2000))


def test_holdout_examples_label_hidden_edges():
    g = _graph().with_edges_removed(np.array([1]), np.array([3]))
    X, y = holdout_examples(g, np.array([1]), np.array([3]), dict.fromkeys(gen.GENERATORS, 100), np.array([1]))
    assert X.shape[1] == len(gen.FEATURES) and y.sum() == 1  # 3 is found again (community 0) and labelled


@pytest.mark.data
@pytest.mark.skipif(not datasets.available("lastfm"), reason="lastfm not under the data directory")
def test_linkpred_runner_on_lastfm_small():
    from glassfeed.evaluate import linkpred

    ev = load_model_settings().evaluation.model_copy(update={"sources": 100, "depth": 30})
    ms = load_model_settings()
    ms = ms.model_copy(update={"lightgbm": ms.lightgbm.model_copy(update={"rounds": 20})})
    run = linkpred.evaluate(linkpred.load("lastfm"), ev, ms)
    rows = run["rows"]
    assert run["sources"] == 100 and run["test_edges"] == 2 * round(0.1 * 12717)
    assert rows["adamic_adar"]["recall@10"] > 2 * rows["popularity"]["recall@10"]
    assert rows["follows_you"]["recall@10"] == 0  # a symmetric graph: no follow-back left to find
    assert 0 < rows["learned"]["recall@50"] <= rows["candidate union"]["recall@all"]
