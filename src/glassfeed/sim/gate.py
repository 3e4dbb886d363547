"""The simulator as a launch gate: a candidate policy against a baseline on many seeded societies, passed or failed
against guardrails with confidence intervals across seeds (``glassfeed gate``; docs/gate.md).

- **The gate is data** (``GateSpec``, a TOML file; the packaged one is ``policies/gates/default.toml``): the
  significance level, the simulation each seed runs, and the guardrails. A guardrail is the online experiments'
  (``experiments.model.Limits``: a metric and its largest allowed relative rise or fall), read by the same
  ``experiments.analysis.guardrail_verdict``; here its metric is one of the simulator's final metrics, it may be
  measured ``against`` another policy than the baseline (the chronological feed, say), and its reference may be
  ``scale``-d (``scale = 0.5, max_increase = 0``: at most half the baseline's).
- **A replicate is one seed** (``run_replicate``): one ``run_simulation`` in which the candidate, the baseline and
  every ``against`` policy browse the same seeded society side by side, on one history and one set of trained
  models, each ranking through ``feed.pipeline.rank``. Fair (the arms differ only by their policy) and cheaper than a
  run per policy (the history is generated and the models trained once per seed).
- **Replicates run in parallel** on Dask (``run_replicates``): a ``LocalCluster`` of ``workers`` processes, or the
  cluster at a scheduler address; one worker runs them serially in this process.
- **Across seeds** (``evaluate``): per seed the relative difference ``candidate / (scale x reference) - 1``; its mean
  and two-sided t-interval across seeds (``across_seeds``); the guardrail's verdict on that interval (pass only when
  the whole interval is within the limits); and in how many seeds the limit held.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError
from scipy import stats

from glassfeed.experiments.analysis import BREACH, PASS, guardrail_verdict
from glassfeed.experiments.model import Limits, spec_problems
from glassfeed.settings import Settings
from glassfeed.sim.loop import SimConfig, SimResult, run_simulation
from glassfeed.sim.report import FINAL_ROWS

#: What a guardrail may measure: the simulator's final metrics (each averaged over the run's steps, or measured at
#: its end; ``sim/report.py``), name -> label.
GATE_METRICS: dict[str, str] = dict(FINAL_ROWS)
#: ``against`` this: the baseline policy of the command.
BASELINE = "baseline"
#: Where the packaged gates are (``--gate NAME`` reads ``NAME.toml`` there).
GATES_DIR = "policies/gates"


class GateError(ValueError):
    """A gate file or request that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateGuardrail(Limits):
    """A guardrail of the gate: the candidate's ``metric`` against the reference's in the same seed."""

    metric: Literal[tuple(GATE_METRICS)] = Field(  # type: ignore[valid-type]
        description="a simulator final metric: " + ", ".join(GATE_METRICS)
    )
    against: StrictStr = Field(
        default=BASELINE, min_length=1, description="'baseline', or a policy run in every seed as the reference"
    )
    scale: StrictFloat | StrictInt = Field(
        default=1, gt=0, description="the reference's value is multiplied by this before the comparison"
    )
    description: StrictStr = Field(default="", max_length=500, description="why, for the report")


class GateSimulation(_Strict):
    """The simulation each seed runs (``SimConfig``'s keys; the command's flags override them)."""

    seeds: StrictInt = Field(ge=2, description="replicates (a t-interval needs at least 2)")
    first_seed: StrictInt = Field(ge=0, description="seeds first_seed .. first_seed + seeds - 1")
    users: StrictInt = Field(ge=10, description="synthetic people per society")
    steps: StrictInt = Field(ge=1, description="simulation steps")
    active_prob: StrictFloat | StrictInt = Field(
        gt=0, le=1, description="probability that a person opens the feed in a step"
    )
    step_hours: StrictFloat | StrictInt = Field(gt=0, description="simulated hours per step")
    history_days: StrictInt = Field(ge=1, description="days of history the models are first trained on")
    retrain_every: StrictInt = Field(ge=0, description="steps between retrains (0 = never)")


class GateSpec(_Strict):
    """A launch gate: the level of its intervals, the simulation of each seed, its guardrails."""

    description: StrictStr = Field(default="", max_length=2000)
    alpha: StrictFloat = Field(gt=0, lt=1, description="two-sided error level: 0.05 gives 95% intervals")
    simulation: GateSimulation
    guardrails: list[GateGuardrail] = Field(min_length=1, max_length=20)

    def references(self, baseline: str) -> list[str]:
        """The policies the guardrails compare the candidate with, in order, once each."""
        return list(dict.fromkeys(self.reference(g, baseline) for g in self.guardrails))

    @staticmethod
    def reference(g: GateGuardrail, baseline: str) -> str:
        return baseline if g.against == BASELINE else g.against


def gate_path(name_or_path: str | Path) -> Path:
    """``--gate``: a TOML file's path, or the name of a packaged gate (``default``)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    return Path(str(resources.files("glassfeed").joinpath(GATES_DIR, f"{name_or_path}.toml")))


def packaged_gates() -> list[str]:
    return sorted(
        Path(f.name).stem
        for f in resources.files("glassfeed").joinpath(GATES_DIR).iterdir()
        if f.name.endswith(".toml")
    )


def parse_gate(body: Any, where: str = "gate") -> GateSpec:
    """``body`` (a dict) as a ``GateSpec``; a ``GateError`` naming ``where`` and each bad key."""
    try:
        return GateSpec.model_validate(body)
    except ValidationError as e:
        problems = [(f, "unknown key" if r == "Extra inputs are not permitted" else r) for f, r in spec_problems(e)]
        raise GateError("; ".join(f"{where}: {f}: {r}" for f, r in problems)) from None


def load_gate(name_or_path: str | Path) -> GateSpec:
    """A gate from its TOML file (or a packaged gate's name); refused with the file and the key named."""
    p = gate_path(name_or_path)
    try:
        body = tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        known = ", ".join(packaged_gates())
        raise GateError(f"{name_or_path}: no such gate file (packaged gates: {known})") from None
    except tomllib.TOMLDecodeError as e:
        raise GateError(f"{p}: not valid TOML: {e}") from None
    return parse_gate(body, str(p))


# --------------------------------------------------------------------------- replicates


@dataclass(frozen=True, slots=True)
class Replicate:
    """One seed's run: the simulator's config (its seed and every policy the gate compares) and the settings."""

    cfg: SimConfig
    settings: Settings | None = None
    #: return the whole ``SimResult`` too (its per-step series: ``glassfeed simulate --seeds``), not only the finals
    keep: bool = False


@dataclass(slots=True)
class SeedResult:
    """What one seed gave: each policy's final metrics (``GATE_METRICS``; None where undefined), and its time; the
    whole ``SimResult`` when the replicate asked to ``keep`` it."""

    seed: int
    values: dict[str, dict[str, float | None]]
    seconds: float
    feed_requests: int
    result: SimResult | None = None


def seed_result(res: SimResult, seed: int, seconds: float, keep: bool = False) -> SeedResult:
    """One run of the simulator as one seed's result (``keep``: with the run itself)."""
    values = {p: {k: (None if f.get(k) is None else float(f[k])) for k in GATE_METRICS} for p, f in res.final.items()}
    requests = int(next(iter(res.final.values()))["feed_requests"]) if res.final else 0
    return SeedResult(seed, values, seconds, requests, res if keep else None)


def run_replicate(job: Replicate) -> SeedResult:
    """One seed: ``run_simulation`` of every policy in a temporary folder (on the machine that runs it)."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"glassfeed-gate-{job.cfg.seed}-") as d:
        res = run_simulation(job.cfg, Path(d), settings=job.settings)
    return seed_result(res, job.cfg.seed, time.perf_counter() - t, job.keep)


def replicates(
    sim: GateSimulation, policies: Sequence[str], settings: Settings | None, seeds: Sequence[int]
) -> list[Replicate]:
    """One replicate per seed, every one running ``policies`` on a society of ``sim``'s size."""
    base = SimConfig(
        users=sim.users,
        steps=sim.steps,
        policies=tuple(dict.fromkeys(policies)),
        active_prob=float(sim.active_prob),
        step_hours=float(sim.step_hours),
        history_days=sim.history_days,
        retrain_every=sim.retrain_every,
    )
    return [Replicate(replace(base, seed=s), settings) for s in seeds]


def run_replicates(
    jobs: Sequence[Replicate],
    workers: int = 1,
    scheduler: str | None = None,
    on_done: Callable[[SeedResult], None] | None = None,
) -> list[SeedResult]:
    """Run every replicate, in order of seed in the result. ``scheduler`` (``tcp://host:8786``): on that Dask
    cluster (each of its workers needs glassfeed installed); else ``workers`` > 1: on a ``LocalCluster`` of that
    many single-threaded worker processes, started and closed here; else serially in this process."""
    done = on_done or (lambda r: None)
    out: list[SeedResult] = []
    if scheduler is None and workers <= 1:
        for job in jobs:
            out.append(run_replicate(job))
            done(out[-1])
    else:
        from distributed import as_completed

        from glassfeed.feed.train import dask_client
        from glassfeed.settings import packaged_settings

        train = packaged_settings().train.model_copy(
            update={"dask_workers": max(1, workers), "dask_threads_per_worker": 1, "dask_processes": True}
        )
        with dask_client(scheduler or "local", train) as client:
            futures = client.map(run_replicate, list(jobs), pure=False)
            for fut in as_completed(futures):
                out.append(fut.result())
                done(out[-1])
    return sorted(out, key=lambda r: r.seed)


# --------------------------------------------------------------------------- across seeds


@dataclass(frozen=True, slots=True)
class SeedInterval:
    """The mean of per-seed values and its two-sided t-interval (``n - 1`` degrees of freedom) across the ``n``
    seeds where the value is defined; NaN where fewer than 2 are."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    def scaled(self, a: float, b: float) -> SeedInterval:
        """The same interval for ``a * x + b`` (a > 0)."""
        return SeedInterval(self.n, a * self.mean + b, a * self.sd, a * self.low + b, a * self.high + b)


def across_seeds(values: Sequence[float | None] | np.ndarray, alpha: float) -> SeedInterval:
    """Mean, sample standard deviation and the ``1 - alpha`` t-interval of ``values`` (None / NaN left out)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return SeedInterval(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return SeedInterval(n, mean, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return SeedInterval(n, mean, sd, mean - half, mean + half)


def relative(candidate: float | None, reference: float | None, scale: float = 1.0) -> float:
    """``candidate / (scale x reference) - 1``; NaN when either is missing or the reference is 0."""
    if candidate is None or reference is None or not reference or not math.isfinite(candidate * reference):
        return math.nan
    return candidate / (scale * reference) - 1.0


@dataclass(slots=True)
class GuardrailResult:
    """A guardrail across seeds: per seed the candidate's value, the reference's and the relative difference; the
    interval of the relative difference (``rel``) and of the plain ratio candidate / reference (``ratio``); how many
    seeds were within the limits; the verdict on the interval (``analysis.guardrail_verdict``)."""

    guardrail: GateGuardrail
    reference: str
    candidate_values: list[float | None]
    reference_values: list[float | None]
    rel_per_seed: list[float]
    rel: SeedInterval
    ratio: SeedInterval
    within: int
    verdict: str

    @property
    def ratio_bounds(self) -> tuple[float | None, float | None]:
        """The limits as bounds on candidate / reference: (lowest allowed, highest allowed)."""
        inc, dec = self.guardrail.limits
        s = float(self.guardrail.scale)
        return (None if dec is None else s * (1 - dec), None if inc is None else s * (1 + inc))

    @property
    def holds_in_every_seed(self) -> bool:
        return self.rel.n > 0 and self.within == len(self.rel_per_seed)


def judge(
    g: GateGuardrail, reference: str, candidate: str, seeds: Sequence[SeedResult], alpha: float
) -> GuardrailResult:
    """One guardrail's result over ``seeds``."""
    cand = [s.values.get(candidate, {}).get(g.metric) for s in seeds]
    ref = [s.values.get(reference, {}).get(g.metric) for s in seeds]
    scale = float(g.scale)
    rel = [relative(c, r, scale) for c, r in zip(cand, ref, strict=True)]
    iv = across_seeds(rel, alpha)
    within = sum(1 for r in rel if math.isfinite(r) and guardrail_verdict(r, r, *g.limits) == PASS)
    verdict = guardrail_verdict(iv.low, iv.high, *g.limits)
    return GuardrailResult(g, reference, cand, ref, rel, iv, iv.scaled(scale, scale), within, verdict)


@dataclass(slots=True)
class GateResult:
    """The gate's outcome: each guardrail's result; ``passed`` only when every guardrail passed."""

    spec: GateSpec
    candidate: str
    baseline: str
    seeds: list[SeedResult]
    guardrails: list[GuardrailResult]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.verdict == PASS for g in self.guardrails)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def breached(self) -> list[GuardrailResult]:
        return [g for g in self.guardrails if g.verdict == BREACH]

    def policies(self) -> list[str]:
        return list(dict.fromkeys([self.candidate, self.baseline, *self.spec.references(self.baseline)]))

    def metric_summary(self, policy: str, metric: str) -> SeedInterval:
        return across_seeds([s.values.get(policy, {}).get(metric) for s in self.seeds], self.spec.alpha)


def evaluate(spec: GateSpec, candidate: str, baseline: str, seeds: Sequence[SeedResult]) -> GateResult:
    """Every guardrail of ``spec`` for ``candidate`` over ``seeds``."""
    results = [judge(g, spec.reference(g, baseline), candidate, seeds, spec.alpha) for g in spec.guardrails]
    return GateResult(spec, candidate, baseline, list(seeds), results)


def machine() -> dict[str, Any]:
    """The machine a gate ran on, for quoting beside its time."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        models = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu, "cores": os.cpu_count()}


__all__ = [
    "BASELINE",
    "GATE_METRICS",
    "GateError",
    "GateGuardrail",
    "GateResult",
    "GateSimulation",
    "GateSpec",
    "GuardrailResult",
    "Replicate",
    "SeedInterval",
    "SeedResult",
    "across_seeds",
    "evaluate",
    "gate_path",
    "judge",
    "load_gate",
    "machine",
    "packaged_gates",
    "parse_gate",
    "relative",
    "replicates",
    "run_replicate",
    "run_replicates",
    "seed_result",
]
