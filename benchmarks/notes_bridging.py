"""Community notes' bridging model on the two-camp simulation: which kinds of notes are shown, and fit time.

Run ``python -m benchmarks.notes_bridging [--seeds 5] [--repeats 5] [--penalty mean|sum]``. For each seed it
simulates the default population (2,000 raters x 50 ratings = 100,000 ratings on 400 notes, 100 of each kind;
glassfeed/moderation/notes_sim.py), fits ``BridgingModel`` with the packaged policy, and prints per note kind how
many notes were shown / rated not helpful / left needing more ratings (summed over seeds), the precision of "shown"
(share of shown notes that are cross-camp), and the fit time (median of ``--repeats`` fits per seed, then median
over seeds) with the machine line.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from benchmarks.common import machine
from glassfeed.moderation.notes import STATUS_NAMES, BridgingModel, load_policy
from glassfeed.moderation.notes_sim import CROSS_CAMP, KINDS, simulate, status_by_kind


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5, help="fits per seed for the time (median)")
    ap.add_argument("--penalty", choices=("mean", "sum"), default=None, help="override the policy's [model] penalty")
    args = ap.parse_args(argv)
    policy = load_policy()
    if args.penalty:
        policy = dataclasses.replace(policy, penalty=args.penalty)

    print(machine())
    totals = {k: dict.fromkeys((*STATUS_NAMES, "total"), 0) for k in KINDS}
    times, iters, shown_cross, shown_all, n_ratings = [], [], 0, 0, 0
    for seed in range(args.seeds):
        sim = simulate(seed)
        n_ratings = sim.values.size
        per_seed = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            model = BridgingModel(policy, seed=seed).fit(sim.raters, sim.notes, sim.values)
            per_seed.append(time.perf_counter() - t)
        times.append(statistics.median(per_seed))
        iters.append(model.n_iter_)
        status = model.status()
        for kind, row in status_by_kind(sim.note_kind, status).items():
            for key, count in row.items():
                totals[kind][key] += count
        shown = status == STATUS_NAMES.index("currently_rated_helpful")
        shown_all += int(shown.sum())
        shown_cross += int(np.sum(shown & (sim.note_kind == CROSS_CAMP)))

    print(
        f"policy penalty = {policy.penalty!r}; {args.seeds} seeds x {n_ratings:,} ratings "
        f"(2,000 raters in two camps 60/40, 400 notes)"
    )
    head = f"{'note kind':<14}{'notes':>7}{'shown':>8}{'not helpful':>13}{'needs more':>12}{'shown %':>9}"
    print(head)
    for kind, row in totals.items():
        pct = 100.0 * row["currently_rated_helpful"] / row["total"]
        print(
            f"{kind:<14}{row['total']:>7}{row['currently_rated_helpful']:>8}"
            f"{row['currently_rated_not_helpful']:>13}{row['needs_more_ratings']:>12}{pct:>8.1f}%"
        )
    precision = shown_cross / shown_all if shown_all else float("nan")
    print(f"precision of shown (cross-camp / all shown): {precision:.3f} ({shown_cross}/{shown_all})")
    print(
        f"fit time on {n_ratings:,} ratings: median {statistics.median(times):.3f} s "
        f"(per-seed medians of {args.repeats}: {', '.join(f'{t:.3f}' for t in times)}); "
        f"ALS sweeps: {min(iters)}-{max(iters)}"
    )

    print("one extra note rated helpful by k raters, all from one camp (seed 0):")
    print(f"{'camp':<7}{'k':>5}{'intercept':>11}{'factor':>8}  {'status':<26}status without the both-sides rule")
    sim = simulate(0)
    new_note = sim.note_kind.size
    rng = np.random.default_rng(0)
    for camp, name in ((1, "A"), (-1, "B")):
        for k in (10, 40, 200, 700):
            who = rng.choice(np.flatnonzero(sim.rater_camp == camp), k, replace=False)
            m = BridgingModel(policy, seed=0).fit(
                np.r_[sim.raters, who], np.r_[sim.notes, np.full(k, new_note)], np.r_[sim.values, np.ones(k)]
            )
            i, f, st = m.note_intercept_[new_note], m.note_factor_[new_note], STATUS_NAMES[m.status()[new_note]]
            m.policy_ = dataclasses.replace(policy, min_minority_net_helpful=0)  # same fit, rule switched off
            lone = STATUS_NAMES[m.status()[new_note]]
            print(f"{name:<7}{k:>5}{i:>11.2f}{f:>8.2f}  {st:<26}{lone}")


if __name__ == "__main__":
    main()
