"""Time ``generate_network`` (default 10,000 users x 30 days) and print what it produced.

Run: ``python -m benchmarks.bench_generate [--users N] [--days D] [--seed S] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import machine
from glassfeed.domain import EventKind
from glassfeed.sim.generate import generate_network


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    times, net = [], None
    for _ in range(a.repeats):
        t = time.perf_counter()
        net = generate_network(a.users, a.days, a.seed)
        times.append(time.perf_counter() - t)
    assert net is not None
    counts = {k.name.lower(): int((net.events.kind == k).sum()) for k in EventKind if (net.events.kind == k).any()}
    out = {
        "users": net.n_users,
        "days": net.days,
        "seed": net.seed,
        "posts": net.n_posts,
        "replies": int((net.post_reply_to >= 0).sum()),
        "initial_follows": len(net.follow_src),
        "events": net.n_events,
        "events_by_kind": counts,
        "median_s": statistics.median(times),
        "runs_s": [round(x, 2) for x in times],
        "machine": machine(),
    }
    print(
        f"generate_network({a.users}, {a.days}, seed={a.seed}): median {out['median_s']:.2f} s over "
        f"{a.repeats} runs {out['runs_s']}"
    )
    print(
        f"  users {out['users']:,}  posts {out['posts']:,} (replies {out['replies']:,})  "
        f"initial follows {out['initial_follows']:,}  events {out['events']:,}"
    )
    print("  " + "  ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"  machine: {out['machine']}")
    return out


if __name__ == "__main__":
    main()
