"""Chaney et al. (2018) homogenisation reproduction: measured vs published, runtime and machine.

Run ``python -m benchmarks.bench_chaney [--sims 50] [--training repeated|single|both] [--jobs 2]``; prints the
table and saves ``bench-results/chaney_<training>.png`` (homogenisation over time, mean +/- 1.96 se).
"""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchmarks.common import machine
from glassfeed.sim.chaney import LABELS, MODELS, ChaneyResult, run_chaney

TOLERANCE = 0.05


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def report(result: ChaneyResult, cpu_s: float | None = None, load_before: str = "n/a") -> str:
    """Table of homogenisation at the last step, measured (mean +/- se over sims) beside the published value."""
    t = result.config.n_total
    lines = [
        f"Chaney et al. 2018 via T-RECS, {result.training} training, {result.n_sims} sims, t = {t}",
        f"{'model':<22}{'measured':>10}{'se':>8}{'published':>11}{'diff':>8}  within +/-{TOLERANCE}",
    ]
    for label, mean, se, pub in result.table():
        diff = mean - pub if pub is not None else float("nan")
        ok = "yes" if abs(diff) <= TOLERANCE else "NO"
        lines.append(f"{label:<22}{mean:>+10.3f}{se:>8.3f}{pub:>+11.3f}{diff:>+8.3f}  {ok}")
    order = [
        m
        for m, _ in sorted(
            ((m, result.final[m][0]) for m in MODELS if m != "ideal" and m in result.final), key=lambda x: -x[1]
        )
    ]
    lines.append("measured order: " + " > ".join(LABELS[m] for m in order))
    cpu = f", CPU time {cpu_s:.1f} s over all processes" if cpu_s is not None else ""
    lines.append(
        f"runtime: wall {result.runtime_s:.1f} s{cpu} (all models, {result.n_sims} sims); "
        f"1-min load average before/after {load_before}/{_load()}"
    )
    return "\n".join(lines)


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def plot(result: ChaneyResult, path: Path) -> None:
    fig = Figure(figsize=(7, 4))  # no pyplot: no global figure registry, no backend to choose
    ax = fig.subplots()
    steps = np.arange(1, result.config.n_total + 1)
    for m in MODELS:
        if m not in result.mean:
            continue
        mean, se = result.mean[m], result.se[m]
        (line,) = ax.plot(steps, mean, label=LABELS[m])
        ax.fill_between(steps, mean - 1.96 * se, mean + 1.96 * se, color=line.get_color(), alpha=0.25)
    ax.set(
        xlabel="Timestep",
        ylabel="Change in Jaccard index",
        ylim=(-0.15, 0.3),
        xlim=(0, result.config.n_total),
        title=f"Homogenisation, {result.training} training ({result.n_sims} sims)",
    )
    ax.grid(alpha=0.4)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--training", choices=["repeated", "single", "both"], default="repeated")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes (one batch of sims each)")
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    args = ap.parse_args(argv)
    print(machine())
    for training in ["repeated", "single"] if args.training == "both" else [args.training]:
        load0, cpu0 = _load(), cpu_seconds()
        result = run_chaney(n_sims=args.sims, seed=args.seed, training=training, n_jobs=args.jobs)
        print(report(result, cpu_seconds() - cpu0, load0))
        path = args.out / f"chaney_{training}.png"
        plot(result, path)
        print(f"plot: {path}\n")


if __name__ == "__main__":
    main()
