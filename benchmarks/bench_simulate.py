"""Time the simulator loop: N users x T steps, one policy, each user active with probability 0.2 per step,
every feed ranked by ``feed.pipeline.rank`` and every reaction ingested back through the Ingestor.

Run: ``python -m benchmarks.bench_simulate [--users 10000] [--steps 100] [--policy engagement]
[--history-days 3] [--retrain-every 25] [--profile]``. Prints the history setup time separately from the loop
(steps/s, feed requests/s, the loop's split into rank / respond / ingest / posts / metrics / retrain) and the
machine. ``--profile`` adds the top functions inside ``rank`` by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine
from glassfeed.sim.loop import SimConfig, World, copy_base, prepare_base


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--policy", default="engagement")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--active-prob", type=float, default=0.2)
    ap.add_argument("--history-days", type=int, default=3)
    ap.add_argument("--retrain-every", type=int, default=25)
    ap.add_argument("--retrain", default="partial")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="ranking processes per step")
    ap.add_argument("--profile", action="store_true", help="profile the loop and print the top functions")
    a = ap.parse_args(argv)
    cfg = SimConfig(
        users=a.users,
        steps=a.steps,
        seed=a.seed,
        policies=(a.policy,),
        active_prob=a.active_prob,
        history_days=a.history_days,
        retrain_every=a.retrain_every,
        retrain=a.retrain,
        homog_panel=min(1000, a.users),
        workers=1 if a.profile else a.workers,
    )
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        t = time.perf_counter()
        base = prepare_base(cfg, Path(tmp))
        setup_s = time.perf_counter() - t
        w = World(cfg, a.policy, copy_base(base, Path(tmp) / f"{a.policy}.db"), base)
        prof = cProfile.Profile() if a.profile else None
        t = time.perf_counter()
        if prof:
            prof.enable()
        for k in range(cfg.steps):
            w.step(k)
        if prof:
            prof.disable()
        loop_s = time.perf_counter() - t
        w.close()
    out = {
        "users": a.users,
        "steps": a.steps,
        "policy": a.policy,
        "active_prob": a.active_prob,
        "history_days": a.history_days,
        "retrain_every": a.retrain_every,
        "retrain": a.retrain,
        "history_setup_s": round(setup_s, 1),
        "history_setup_split_s": {k: round(v, 1) for k, v in base.seconds.items()},
        "loop_s": round(loop_s, 1),
        "steps_per_s": round(cfg.steps / loop_s, 3),
        "feed_requests": w.n_requests,
        "feed_requests_per_s": round(w.n_requests / loop_s, 1),
        "loop_split_s": {k: round(v, 1) for k, v in w.seconds.items()},
        "machine": machine(),
    }
    print(
        f"simulate {a.users:,} users x {a.steps} steps ({a.policy}, p_active={a.active_prob}): loop "
        f"{loop_s:.1f} s = {out['steps_per_s']} steps/s, {out['feed_requests_per_s']} feed requests/s "
        f"({w.n_requests:,} requests); history setup {setup_s:.1f} s"
    )
    print(json.dumps(out, indent=1))
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    return out


if __name__ == "__main__":
    main()
