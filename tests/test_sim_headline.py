"""``glassfeed simulate``'s headline (sim/headline.py): findings stated only with an interval that excludes no
effect, nulls flagged "not distinguishable", single seeds and small runs warned instead; ``--seeds 2`` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glassfeed.cli import app
from glassfeed.settings import SimulationSettings
from glassfeed.sim.gate import SeedResult, across_seeds
from glassfeed.sim.headline import HEADLINE_METRICS, headline, headline_html, headline_markdown

SETTINGS = SimulationSettings(alpha=0.05, min_person_steps=5000)


def _seeds(policy: list[float], control: list[float], metric: str = "engagement_rate") -> list[SeedResult]:
    return [
        SeedResult(i + 1, {"chronological": {metric: c}, "engagement": {metric: p}}, 1.0, 10)
        for i, (p, c) in enumerate(zip(policy, control, strict=True))
    ]


def test_a_clear_effect_is_stated_with_its_interval_and_the_seeds_it_holds_in() -> None:
    seeds = _seeds([0.12, 0.13, 0.125, 0.118, 0.131], [0.10] * 5)
    h = headline(seeds, users=2000, steps=50, settings=SETTINGS)
    assert h.control == "chronological" and h.warnings == []
    (eng,) = [c for c in h.comparisons if c.metric == "engagement_rate"]
    expected = across_seeds([0.2, 0.3, 0.25, 0.18, 0.31], 0.05)  # the gate's interval, not a second one
    assert (eng.rel.mean, eng.rel.low, eng.rel.high) == pytest.approx((expected.mean, expected.low, expected.high))
    assert eng.stated and eng.holds == 5 and h.findings == [eng]
    md = headline_markdown(h)
    assert "**engagement**: engagement / impression 24.8% higher than chronological" in md
    assert f"interval {expected.low:+.1%} to {expected.high:+.1%} over 5 seeds; holds in 5 of 5 seeds" in md
    # the other metrics have no values here: never a finding
    assert all(not c.stated and math.isnan(c.rel.mean) for c in h.comparisons if c.metric != "engagement_rate")
    assert [c.metric for c in h.comparisons] == list(HEADLINE_METRICS)


def test_a_null_is_flagged_not_distinguishable() -> None:
    seeds = _seeds([0.11, 0.09, 0.105, 0.095], [0.10] * 4, metric="divisive_share_top10")
    h = headline(seeds, users=2000, steps=50, settings=SETTINGS)
    (div,) = [c for c in h.comparisons if c.metric == "divisive_share_top10"]
    assert div.rel.low < 0 < div.rel.high and not div.stated and h.findings == []
    md = headline_markdown(h)
    assert "none: no difference is distinguishable at this size" in md
    assert "divisive share, top 10 served: not distinguishable from chronological at this size" in md
    assert "engagement higher in 2 of 4 seeds" in md


def test_a_single_seed_and_a_small_run_state_no_finding_but_say_why() -> None:
    one = headline(_seeds([0.5], [0.1]), users=2000, steps=50, settings=SETTINGS)
    assert one.comparisons == [] and len(one.warnings) == 1 and "single seed cannot tell" in one.warnings[0]
    small = headline(_seeds([0.5, 0.52, 0.51], [0.1] * 3), users=300, steps=10, settings=SETTINGS)
    assert small.comparisons == [] and "3,000 person-steps" in small.warnings[0]
    assert "min_person_steps = 5,000" in small.warnings[0]
    html = headline_html(small, [])
    assert '<p class="warn"><strong>Warning.</strong> This run is too small to tell' in html
    assert "interval" not in headline_markdown(small).split("Warning.")[0]


def test_without_chronological_the_first_policy_is_the_control_and_it_says_so() -> None:
    seeds = [
        SeedResult(s, {"a": {"engagement_rate": 0.1}, "b": {"engagement_rate": 0.2 + s / 100}}, 1, 1) for s in (1, 2)
    ]
    h = headline(seeds, users=2000, steps=50, settings=SETTINGS)
    assert h.control == "a" and "No chronological control" in h.warnings[0]
    assert {c.policy for c in h.comparisons} == {"b"}


def test_simulate_seeds_2_end_to_end_writes_the_headline(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--seeds", "2", "--users", "40", "--steps", "2", "--history-days", "2"]
    args += ["--retrain-every", "0", "--policies", "engagement,chronological", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    body = json.loads((out / "headline.json").read_text())
    assert body["seeds"] == [1, 2] and body["control"] == "chronological"
    assert body["comparisons"] == [] and "80 person-steps" in body["warnings"][0]
    report = (out / "report.html").read_text()
    assert report.index("<h2>Headline") < report.index("<h2>Final comparison")
    assert report.count('<figure class="wide">') == len(HEADLINE_METRICS)  # one band plot per headline metric
    bad = CliRunner().invoke(app, [*args[:-2], "--out", str(tmp_path / "x"), "--moderation", "sim_drop"])
    assert bad.exit_code == 2
