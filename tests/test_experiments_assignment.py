"""Experiments as data and their assignment: refusals naming the field; deterministic arms, balanced (the SRM test on
100,000 simulated people passes at alpha = 0.001), independent across layers, at most one running experiment per
layer and person, and the layer's buckets given out without overlap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from glassfeed.experiments.analysis import srm_check
from glassfeed.experiments.assignment import arm_in, arm_of, assign, free_range, layer_bucket
from glassfeed.experiments.model import BUCKETS, Experiment, ExperimentError, load_spec_file, parse_spec

PEOPLE = [f"u{i}" for i in range(100_000)]


def running(body: dict, buckets: tuple[int, int] = (0, BUCKETS)) -> Experiment:
    return Experiment(parse_spec(body), "running", 0.0, 0.0, 0.0, None, buckets)


def feed_spec(name: str = "feed-test", shares: tuple[float, ...] = (0.5, 0.5), **kw) -> dict:
    arms = [{"name": f"a{i}", "share": s, "policy": "engagement"} for i, s in enumerate(shares)]
    return {"name": name, "layer": "feed", "arms": arms, **kw}


def test_assignment_is_deterministic_and_salted() -> None:
    exp = running(feed_spec())
    first = [arm_of(exp, u) for u in PEOPLE[:2000]]
    assert first == [arm_of(exp, u) for u in PEOPLE[:2000]]
    assert None not in first
    other_salt = [arm_of(exp, u, salt="s2") for u in PEOPLE[:2000]]
    assert 0.4 < np.mean([a != b for a, b in zip(first, other_salt)]) < 0.6  # a new salt reshuffles
    renamed = running(feed_spec(name="feed-test-2"))
    assert 0.4 < np.mean([a != arm_of(renamed, u) for a, u in zip(first, PEOPLE)]) < 0.6  # keyed by experiment too
    assert arm_of(Experiment(exp.spec, "stopped", buckets=exp.buckets), "u1") is None  # only while running
    assert arm_in(Experiment(exp.spec, "stopped", buckets=exp.buckets), "u1") == first[1]  # the report still knows


def test_assignment_is_balanced_srm_on_100k_people() -> None:
    shares = (0.5, 0.3, 0.2)
    exp = running(feed_spec(shares=shares))
    arms = [arm_of(exp, u) for u in PEOPLE]
    counts = [arms.count(f"a{i}") for i in range(3)]
    assert sum(counts) == len(PEOPLE)
    srm = srm_check(counts, shares, alpha=0.001)
    assert not bool(srm.mismatch), (counts, float(srm.p_value))
    assert abs(counts[0] / len(PEOPLE) - 0.5) < 0.01


def test_layers_overlap_independently() -> None:
    feed = running(feed_spec())
    ads = running(
        {
            "name": "ads-test",
            "layer": "ads",
            "arms": [{"name": "low", "share": 0.5, "ad_load": 0.05}, {"name": "high", "share": 0.5, "ad_load": 0.2}],
        }
    )
    pairs = [(assign([feed, ads], u)) for u in PEOPLE[:40_000]]
    assert all(set(p) == {"feed", "ads"} for p in pairs)  # everyone is in one experiment on each layer
    table = np.zeros((2, 2))
    for p in pairs:
        table[int(p["feed"][1] == "a1"), int(p["ads"][1] == "high")] += 1
    _, p_value, _, _ = sps.chi2_contingency(table)
    assert p_value > 0.001, table  # the feed arm says nothing about the ads arm
    # the buckets of two layers are independent too
    b = np.array(
        [[layer_bucket("feed", u) < BUCKETS // 2, layer_bucket("ads", u) < BUCKETS // 2] for u in PEOPLE[:40_000]]
    )
    _, p_value, _, _ = sps.chi2_contingency(np.histogram2d(b[:, 0], b[:, 1], bins=2)[0])
    assert p_value > 0.001


def test_one_running_experiment_per_layer_and_person() -> None:
    first = running(feed_spec("first", traffic=0.5), free_range([], "feed", 0.5))
    assert first.buckets == (0, BUCKETS // 2)
    second_range = free_range([first], "feed", 0.5)
    assert second_range == (BUCKETS // 2, BUCKETS)
    second = running(feed_spec("second", traffic=0.5), second_range)
    assert free_range([first, second], "feed", 0.01) is None  # the layer is full
    assert free_range([first, second], "ads", 1.0) == (0, BUCKETS)  # another layer is not
    both = [assign([first, second], u) for u in PEOPLE[:20_000]]
    assert all(len(a) == 1 for a in both)  # nobody is in both
    share_first = np.mean([a["feed"][0].name == "first" for a in both])
    assert 0.48 < share_first < 0.52
    stopped = Experiment(first.spec, "stopped", buckets=first.buckets)
    assert free_range([stopped, second], "feed", 0.3) == (0, 3000)  # a stopped experiment's buckets are free again


def test_traffic_takes_its_share_of_the_layer() -> None:
    exp = running(feed_spec(traffic=0.3), free_range([], "feed", 0.3))
    share = np.mean([arm_of(exp, u) is not None for u in PEOPLE[:20_000]])
    assert 0.28 < share < 0.32


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"layer": "search"}, "layer", "feed"),
        ({"name": "Bad Name"}, "name", "pattern"),
        ({"arms": [{"name": "a", "share": 1.0, "policy": "engagement"}]}, "arms", "at least 2"),
        (
            {"arms": [{"name": "a", "share": 0.6, "policy": "x"}, {"name": "b", "share": 0.6, "policy": "y"}]},
            "arms",
            "sum to 1.2",
        ),
        (
            {"arms": [{"name": "a", "share": 0.5, "policy": "x"}, {"name": "a", "share": 0.5, "policy": "y"}]},
            "arms",
            "own name",
        ),
        (
            {"arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "policy": "y"}]},
            "arms",
            "policy is required",
        ),
        (
            {"arms": [{"name": "a", "share": 1.5, "policy": "x"}, {"name": "b", "share": 0.5, "policy": "y"}]},
            "arms.0.share",
            "less than or equal to 1",
        ),
        ({"traffic": 0}, "traffic", "greater than 0"),
        ({"control": "zz"}, "control", "not an arm"),
        ({"guardrails": [{"metric": "divisive_share"}]}, "guardrails.0", "max_increase or max_decrease"),
        ({"guardrails": [{"metric": "happiness", "max_increase": 0.05}]}, "guardrails.0.metric", "divisive_share"),
        ({"guardrails": [{"metric": "engagement", "max_decrease": -0.1}]}, "guardrails.0.max_decrease", "greater"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(ExperimentError) as e:
        parse_spec({**feed_spec(), **change})
    assert e.value.field == field and words in e.value.reason, e.value.problems


def test_ads_arms_set_an_ad_load_and_feed_arms_a_policy() -> None:
    with pytest.raises(ExperimentError, match="ad_load is required"):
        parse_spec(
            {
                "name": "x",
                "layer": "ads",
                "arms": [
                    {"name": "a", "share": 0.5, "policy": "engagement"},
                    {"name": "b", "share": 0.5, "ad_load": 0.1},
                ],
            }
        )
    with pytest.raises(ExperimentError, match="only an ads arm"):
        parse_spec(
            feed_spec(
                arms=[
                    {"name": "a", "share": 0.5, "policy": "x", "ad_load": 0.1},
                    {"name": "b", "share": 0.5, "policy": "y"},
                ]
            )
        )
    with pytest.raises(ExperimentError) as e:
        parse_spec(
            {
                "name": "x",
                "layer": "ads",
                "arms": [{"name": "a", "share": 0.5, "ad_load": 0.7}, {"name": "b", "share": 0.5, "ad_load": 0.1}],
            }
        )
    assert e.value.field == "arms.0.ad_load"


def test_a_toml_file_is_the_same_definition(tmp_path) -> None:
    f = tmp_path / "divisive.toml"
    f.write_text(
        'name = "bridging-vs-engagement"\nlayer = "feed"\ntraffic = 0.5\n'
        '[[arms]]\nname = "control"\nshare = 0.5\npolicy = "engagement"\n'
        '[[arms]]\nname = "bridging"\nshare = 0.5\npolicy = "bridging"\n'
        '[[guardrails]]\nmetric = "divisive_share"\nmax_increase = 0.05\n'
    )
    spec = load_spec_file(f)
    assert spec.control_arm == "control" and spec.guardrails[0].max_increase == 0.05
    round_trip = Experiment.from_row(Experiment(spec).to_row())
    assert round_trip.spec == spec and round_trip.status == "draft"
    f.write_text('name = "x"\nlayer = "feed"\n')
    with pytest.raises(ExperimentError) as e:
        load_spec_file(f)
    assert e.value.field == "arms" and str(f) in e.value.reason
