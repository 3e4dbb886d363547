"""The headline of ``glassfeed simulate``'s report (issue 18 item 3): each finding with its interval across seeds and
how many seeds it holds in, or, when the run cannot tell, a plain warning instead of a finding.

For each ranked policy against the control (the chronological feed when the run has it, else the first policy) and
each headline metric: per seed the relative difference ``policy / control - 1`` (``gate.relative``), its mean and
two-sided t-interval across seeds (``gate.across_seeds``, the launch gate's statistics), and the seeds whose own
difference has the sign of the mean. A finding is stated only when the interval excludes 0; otherwise the comparison
is "not distinguishable at this size". A single seed, or a run of fewer users x steps than ``[simulation]
min_person_steps``, states no finding at all (``Headline.warnings`` says why). Plots: one per headline metric, the
mean across seeds over the steps in a band from the lowest to the highest seed.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glassfeed.settings import SimulationSettings
from glassfeed.sim.gate import GATE_METRICS, SeedInterval, SeedResult, across_seeds, relative
from glassfeed.sim.report import METRICS, band_plot

#: The metrics the headline states, in order (each one of ``gate.GATE_METRICS``).
HEADLINE_METRICS: tuple[str, ...] = (
    "engagement_rate",
    "satisfaction",
    "regretted_time_s",
    "divisive_share_top10",
    "topic_entropy",
)
#: The control the ranked policies are compared with, when the run has it.
CONTROL = "chronological"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One policy against the control on one metric, across seeds."""

    policy: str
    control: str
    metric: str
    rel_per_seed: list[float]  # policy / control - 1 per seed, NaN where undefined
    rel: SeedInterval
    policy_mean: float
    control_mean: float
    holds: int  # seeds whose own difference has the sign of the mean

    @property
    def label(self) -> str:
        return GATE_METRICS[self.metric]

    @property
    def stated(self) -> bool:
        """A finding: the interval excludes no effect (0)."""
        return self.rel.n >= 2 and math.isfinite(self.rel.low) and (self.rel.low > 0 or self.rel.high < 0)

    def words(self, alpha: float) -> str:
        n = len(self.rel_per_seed)
        undefined = n - self.rel.n
        iv = (
            f"mean {self.rel.mean:+.1%}, {1 - alpha:.0%} interval {self.rel.low:+.1%} to {self.rel.high:+.1%} "
            f"over {self.rel.n} seeds"
        )
        if undefined:
            iv += f"; undefined in {undefined} (the control's value was 0)"
        if self.stated:
            direction = "higher" if self.rel.mean > 0 else "lower"
            return (
                f"**{self.policy}**: {self.label} {abs(self.rel.mean):.1%} {direction} than {self.control} "
                f"({iv}; holds in {self.holds} of {n} seeds)"
            )
        return (
            f"{self.policy}: {self.label}: not distinguishable from {self.control} at this size "
            f"({iv}; {self.policy} higher in {sum(1 for r in self.rel_per_seed if r > 0)} of {n} seeds)"
        )


@dataclass(slots=True)
class Headline:
    """What the report states first: the run's size, its warnings, and the comparisons (none when it warns)."""

    seeds: list[int]
    users: int
    steps: int
    alpha: float
    control: str | None
    warnings: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def findings(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.stated]


def compare(policy: str, control: str, metric: str, seeds: Sequence[SeedResult], alpha: float) -> Comparison:
    """``policy`` against ``control`` on ``metric`` over ``seeds``."""
    pol = [s.values.get(policy, {}).get(metric) for s in seeds]
    ctl = [s.values.get(control, {}).get(metric) for s in seeds]
    rel = [relative(p, c) for p, c in zip(pol, ctl, strict=True)]
    iv = across_seeds(rel, alpha)
    sign = math.copysign(1.0, iv.mean) if math.isfinite(iv.mean) and iv.mean != 0 else 0.0
    holds = sum(1 for r in rel if math.isfinite(r) and r * sign > 0)
    return Comparison(
        policy, control, metric, rel, iv, across_seeds(pol, alpha).mean, across_seeds(ctl, alpha).mean, holds
    )


def headline(seeds: Sequence[SeedResult], users: int, steps: int, settings: SimulationSettings) -> Headline:
    """The headline of a run of ``users`` x ``steps`` on ``seeds`` (one ``SeedResult`` per seed, policies in the order
    of the run)."""
    policies = list(dict.fromkeys(p for s in seeds for p in s.values))
    control = CONTROL if CONTROL in policies else (policies[0] if policies else None)
    h = Headline([s.seed for s in seeds], users, steps, settings.alpha, control)
    if len(seeds) < 2:
        h.warnings.append(
            "A single seed cannot tell: one synthetic society gives one number per policy and no interval, and "
            "another seed can reverse a difference. No finding is stated; run `--seeds 5` or more to get intervals."
        )
    if users * steps < settings.min_person_steps:
        h.warnings.append(
            f"This run is too small to tell: {users:,} users x {steps} steps = {users * steps:,} person-steps per "
            f"seed, below [simulation] min_person_steps = {settings.min_person_steps:,}. No finding is stated (a "
            "300 x 10 run once showed stated_preference with a higher divisive share than engagement, the opposite "
            "of the 2,000 x 50 run)."
        )
    cannot_tell = bool(h.warnings)  # a single seed, or too small a run
    if control is not None and CONTROL not in policies:
        h.warnings.append(f"No {CONTROL} control in the run: the policies are compared with {control}.")
    if control is None or cannot_tell:
        return h
    h.comparisons = [
        compare(p, control, m, seeds, settings.alpha) for p in policies if p != control for m in HEADLINE_METRICS
    ]
    return h


def headline_markdown(h: Headline) -> str:
    """The headline as Markdown (``headline.md``)."""
    seeds = f"seed {h.seeds[0]}" if len(h.seeds) == 1 else f"seeds {h.seeds[0]}-{h.seeds[-1]} ({len(h.seeds)})"
    out = [f"# Headline: {h.users:,} users x {h.steps} steps, {seeds}", ""]
    out += [f"> **Warning.** {w}\n" for w in h.warnings]
    if h.comparisons:
        found = h.findings
        out.append(
            f"Each policy against {h.control}, per seed `policy / {h.control} - 1`, its mean and {1 - h.alpha:.0%} "
            "t-interval across seeds; a finding is stated only when the interval excludes 0."
        )
        out += ["", "## Findings", ""]
        out += [f"- {c.words(h.alpha)}" for c in found] or ["- none: no difference is distinguishable at this size"]
        rest = [c for c in h.comparisons if not c.stated]
        if rest:
            out += ["", "## Not distinguishable at this size", ""]
            out += [f"- {c.words(h.alpha)}" for c in rest]
    return "\n".join(out) + "\n"


def _inline(md: str) -> str:
    """Markdown's ``**bold**`` and ``code`` of one line as HTML (the rest escaped)."""
    parts = html.escape(md).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def bands(seeds: Sequence[SeedResult], metric: str) -> dict[str, list[tuple[float, float, float]]]:
    """Per policy and step: (mean, lowest, highest) of ``metric`` across the seeds that kept their run (NaN where no
    seed has a value)."""
    runs = [s.result for s in seeds if s.result is not None]
    out: dict[str, list[tuple[float, float, float]]] = {}
    for p in dict.fromkeys(q for r in runs for q in r.series):
        per_seed = [r.series.get(p, {}).get(metric, []) for r in runs]
        steps = max((len(x) for x in per_seed), default=0)
        rows = []
        for i in range(steps):
            vals = [float(x[i]) for x in per_seed if i < len(x) and x[i] is not None and math.isfinite(x[i])]
            rows.append((sum(vals) / len(vals), min(vals), max(vals)) if vals else (math.nan, math.nan, math.nan))
        if rows:
            out[p] = rows
    return out


def headline_html(h: Headline, seeds: Sequence[SeedResult]) -> str:
    """The headline section of ``report.html``: warnings, findings, and one large plot per headline metric with its
    band across seeds (when the seeds kept their runs and there is more than one)."""
    md = headline_markdown(h).splitlines()
    body: list[str] = []
    for line in md[1:]:
        if line.startswith("> "):
            body.append(f'<p class="warn">{_inline(line[2:])}</p>')
        elif line.startswith("## "):
            body.append(f"<h3>{html.escape(line[3:])}</h3>")
        elif line.startswith("- "):
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line:
            body.append(f"<p>{_inline(line)}</p>")
    text = "\n".join(body).replace("</h3>\n<li>", "</h3>\n<ul><li>").replace("</li>\n<h3>", "</li></ul>\n<h3>")
    text += "</ul>" if text.endswith("</li>") else ""
    figs = []
    if len(seeds) > 1 and all(s.result is not None for s in seeds):
        for m in HEADLINE_METRICS:
            b = bands(seeds, m)
            if b:
                title, desc = METRICS[m]
                figs.append(
                    f'<figure class="wide"><img alt="{html.escape(title)}" src="data:image/png;base64,'
                    f'{band_plot(title, b)}"><figcaption>{html.escape(desc)}; line: the mean across '
                    f"{len(seeds)} seeds, band: the lowest to the highest seed</figcaption></figure>"
                )
    below = f"<p>Everything below the headline is seed {h.seeds[0]}'s run alone.</p>" if len(h.seeds) > 1 else ""
    return f"<h2>{html.escape(md[0][2:])}</h2>\n{text}\n{''.join(figs)}\n{below}"


def headline_dict(h: Headline) -> dict[str, Any]:
    def num(v: float) -> float | None:
        return v if math.isfinite(v) else None

    return {
        "seeds": h.seeds,
        "users": h.users,
        "steps": h.steps,
        "alpha": h.alpha,
        "control": h.control,
        "warnings": h.warnings,
        "comparisons": [
            {
                "policy": c.policy,
                "control": c.control,
                "metric": c.metric,
                "stated": c.stated,
                "rel": {"n": c.rel.n, "mean": num(c.rel.mean), "low": num(c.rel.low), "high": num(c.rel.high)},
                "rel_per_seed": [num(r) for r in c.rel_per_seed],
                "holds_in_seeds": c.holds,
                "policy_mean": num(c.policy_mean),
                "control_mean": num(c.control_mean),
            }
            for c in h.comparisons
        ],
    }


def write_headline(h: Headline, folder: Path) -> tuple[Path, Path]:
    """``headline.md`` and ``headline.json`` into ``folder``."""
    md, js = folder / "headline.md", folder / "headline.json"
    md.write_text(headline_markdown(h), "utf-8")
    js.write_text(json.dumps(headline_dict(h), indent=1, allow_nan=False), "utf-8")
    return md, js


__all__ = [
    "CONTROL",
    "HEADLINE_METRICS",
    "Comparison",
    "Headline",
    "bands",
    "compare",
    "headline",
    "headline_dict",
    "headline_html",
    "headline_markdown",
    "write_headline",
]
