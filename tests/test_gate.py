"""``glassfeed gate`` (sim/gate.py): the interval and verdict across seeds on hand-made per-seed numbers, the gate
file's refusals naming the key, and a tiny gate end to end through the simulator (serial, 2 seeds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glassfeed.cli import app
from glassfeed.experiments.analysis import BREACH, INCONCLUSIVE, PASS
from glassfeed.experiments.model import Guardrail, Limits
from glassfeed.sim.gate import (
    GateError,
    GateGuardrail,
    SeedResult,
    across_seeds,
    evaluate,
    judge,
    load_gate,
    parse_gate,
    relative,
)

runner = CliRunner()
SIM = {
    "seeds": 2,
    "first_seed": 1,
    "users": 40,
    "steps": 2,
    "active_prob": 0.2,
    "step_hours": 6.0,
    "history_days": 2,
    "retrain_every": 0,
}


def _seeds(cand: list[float], ref: list[float], metric: str = "engagement_rate") -> list[SeedResult]:
    return [
        SeedResult(i + 1, {"new": {metric: c}, "old": {metric: r}}, 1.0, 10)
        for i, (c, r) in enumerate(zip(cand, ref, strict=True))
    ]


def test_across_seeds_is_the_t_interval_by_hand():
    iv = across_seeds([1.0, 2.0, 3.0, None, float("nan")], alpha=0.05)
    # n = 3: mean 2, sd 1, t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.484138
    assert iv.n == 3 and iv.mean == pytest.approx(2.0) and iv.sd == pytest.approx(1.0)
    assert (iv.low, iv.high) == pytest.approx((2.0 - 2.484138, 2.0 + 2.484138), abs=1e-6)
    one = across_seeds([0.5], alpha=0.05)
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(relative(0.2, 0.0)) and math.isnan(relative(None, 0.1))
    assert relative(0.1, 0.4, scale=0.5) == pytest.approx(-0.5)


@pytest.mark.parametrize(
    ("cand", "verdict", "within"),
    [
        ([0.97, 0.99, 0.98, 1.01, 0.985], PASS, 5),  # every seed and the whole interval above 0.95
        ([0.80, 0.82, 0.78, 0.81, 0.79], BREACH, 0),  # the whole interval below 0.95
        ([0.90, 1.02, 0.96, 0.93, 0.99], INCONCLUSIVE, 3),  # mean above 0.95, interval straddling it
        ([0.96, 0.96, 0.96, 0.96, 0.94], INCONCLUSIVE, 4),  # 4 seeds within, but the interval reaches below
    ],
)
def test_verdict_across_seeds(cand, verdict, within):
    g = GateGuardrail(metric="engagement_rate", max_decrease=0.05)
    r = judge(g, "old", "new", _seeds([c * 0.2 for c in cand], [0.2] * 5), alpha=0.05)
    assert r.verdict == verdict and r.within == within
    assert r.ratio.mean == pytest.approx(sum(cand) / 5)
    assert r.holds_in_every_seed == (within == 5)
    assert r.ratio_bounds == (pytest.approx(0.95), None)


def test_scale_against_and_undefined_seeds():
    # "at most half the reference's": candidate / (0.5 x reference) - 1 <= 0
    g = GateGuardrail(metric="divisive_share_top10", scale=0.5, max_increase=0, against="chrono")
    r = judge(g, "old", "new", _seeds([0.10, 0.12, 0.11, 0.3], [0.30, 0.30, 0.30, 0.0], g.metric), 0.05)
    assert r.rel.n == 3 and r.within == 3 and not r.holds_in_every_seed  # the 0 reference: undefined
    assert r.verdict == PASS and r.ratio_bounds == (None, pytest.approx(0.5))
    assert r.ratio.mean == pytest.approx(0.11 / 0.30)
    spec = parse_gate({"alpha": 0.05, "simulation": SIM, "guardrails": [g.model_dump()]})
    assert spec.references("base") == ["chrono"]
    res = evaluate(spec, "new", "base", _seeds([0.1], [0.2], g.metric))
    assert not res.passed and res.guardrails[0].verdict == INCONCLUSIVE and res.policies() == ["new", "base", "chrono"]


def test_gate_file_refusals_name_the_key(tmp_path):
    spec = load_gate("default")
    assert [g.metric for g in spec.guardrails] == ["engagement_rate", "divisive_share_top10", "topic_entropy"]
    assert spec.references("engagement") == ["engagement", "chronological"]
    assert issubclass(GateGuardrail, Limits) and issubclass(Guardrail, Limits)  # one guardrail definition
    good = {"alpha": 0.05, "simulation": SIM, "guardrails": [{"metric": "engagement_rate", "max_decrease": 0.05}]}
    cases = [
        (
            {**good, "guardrails": [{"metric": "engagement_rate", "max_fall": 0.05}]},
            "guardrails.0.max_fall: unknown key",
        ),
        ({**good, "thresholds": 1}, "thresholds: unknown key"),
        ({**good, "simulation": {**SIM, "user": 3}}, "simulation.user: unknown key"),
        ({**good, "guardrails": [{"metric": "engagement", "max_decrease": 0.05}]}, "guardrails.0.metric"),
        ({**good, "guardrails": [{"metric": "engagement_rate"}]}, "max_increase or max_decrease"),
        ({**good, "guardrails": [{"metric": "engagement_rate", "max_decrease": -0.1}]}, "guardrails.0.max_decrease"),
        ({**good, "simulation": {**SIM, "seeds": 1}}, "simulation.seeds"),
    ]
    for body, needle in cases:
        with pytest.raises(GateError, match=needle.replace(".", r"\.")):
            parse_gate(body, "my.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("alpha = 0.05\nsurprise = true\n[simulation]\nseeds = 2\n")
    with pytest.raises(GateError, match=r"bad\.toml: surprise: unknown key"):
        load_gate(bad)
    with pytest.raises(GateError, match="packaged gates: default"):
        load_gate("nope")


def _gate_file(tmp_path: Path, name: str, guardrails: str) -> Path:
    sim = "\n".join(f"{k} = {v}" for k, v in SIM.items())
    p = tmp_path / f"{name}.toml"
    p.write_text(f'description = "test gate"\nalpha = 0.05\n[simulation]\n{sim}\n{guardrails}')
    return p


def test_usage_errors_exit_2(tmp_path):
    ok = _gate_file(tmp_path, "ok", '[[guardrails]]\nmetric = "engagement_rate"\nmax_decrease = 0.05\n')
    base = ["gate", "--candidate", "engagement", "--baseline", "engagement", "--gate", str(ok), "--workers", "1"]
    r = runner.invoke(app, [*base, "--users", "5"])
    assert r.exit_code == 2 and "--users" in r.output, r.output
    r = runner.invoke(app, ["gate", "--candidate", "nope", "--baseline", "engagement", "--gate", str(ok)])
    assert r.exit_code == 2 and "unknown policy 'nope'" in r.output, r.output
    bad = _gate_file(tmp_path, "bad", '[[guardrails]]\nmetric = "engagement_rate"\nmax_drop = 0.05\n')
    r = runner.invoke(app, ["gate", "--candidate", "engagement", "--baseline", "engagement", "--gate", str(bad)])
    assert r.exit_code == 2 and "guardrails.0.max_drop: unknown key" in r.output, r.output
    r = runner.invoke(app, [*base, "--scheduler", "somewhere"])
    assert r.exit_code == 2 and "--scheduler" in r.output, r.output


def test_gate_end_to_end_serial(tmp_path):
    """2 seeds x 40 people x 2 steps through the real simulator: an A/A gate passes (exit 0); a gate asking the
    candidate for half its own divisive share fails (exit 1); the reports are written."""
    aa = _gate_file(
        tmp_path,
        "aa",
        '[[guardrails]]\nmetric = "engagement_rate"\nmax_decrease = 0.05\n'
        # the same population in every world: polarisation at the start is the chronological world's exactly
        '[[guardrails]]\nmetric = "polarisation_start"\nagainst = "chronological"\nmax_decrease = 0.01\n',
    )
    args = ["gate", "--candidate", "engagement", "--baseline", "engagement", "--workers", "1"]
    r = runner.invoke(app, [*args, "--gate", str(aa), "--out", str(tmp_path / "aa")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "aa" / "gate.json").read_text())
    assert rep["verdict"] == "pass" and rep["seeds"] == [1, 2]
    eng, ent = rep["guardrails"]
    assert eng["verdict"] == "pass" and eng["ratio"]["mean"] == 1.0 and eng["within_seeds"] == 2
    assert ent["reference"] == "chronological" and ent["ratio"]["mean"] == 1.0 and ent["verdict"] == "pass"
    assert set(rep["policies"]) == {"engagement", "chronological"}
    assert rep["timing"]["runner"] == "1 process (serial)" and rep["machine"]["cores"]
    md = (tmp_path / "aa" / "gate.md").read_text()
    assert "Launch gate: engagement against engagement: PASS" in md and "≥ 0.95x engagement's" in md

    half = _gate_file(tmp_path, "half", '[[guardrails]]\nmetric = "engagement_rate"\nscale = 0.5\nmax_increase = 0\n')
    r = runner.invoke(app, [*args, "--gate", str(half), "--out", str(tmp_path / "half")])
    assert r.exit_code == 1, r.output
    rep = json.loads((tmp_path / "half" / "gate.json").read_text())
    assert rep["verdict"] == "fail" and rep["guardrails"][0]["verdict"] == "breach"
    assert rep["guardrails"][0]["rel"]["mean"] == pytest.approx(1.0)
