"""Where a feed request's time goes: cProfile over ``--requests`` pages (impressions logged, as the server does) on a
trained store, after 50 warm-up pages. Prints the mean time a request under the profiler and the top functions by
cumulative time. Writes impressions into the store: run it on a copy.

Run: ``python -m benchmarks.profile_feed --db <copy of a trained store> [--requests 200] [--limit 20]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args(argv)
    print(machine())
    svc = FeedService(Ingestor(open_store(args.db)), clock="data")
    st = svc.state
    rng = np.random.default_rng(0)
    active = [u for u in range(1, st.n_users + 1) if st.graph.following(u)]
    for u in rng.choice(active, 50).tolist():
        svc.feed(st.users.id_of(u), limit=args.limit, log_impressions=True)
    users = rng.choice(active, args.requests).tolist()
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for u in users:
        svc.feed(st.users.id_of(u), limit=args.limit, log_impressions=True)
    prof.disable()
    ms = (time.perf_counter() - t) / len(users) * 1e3
    print(f"{ms:.1f} ms a request under the profiler")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
    svc.close()
    return ms


if __name__ == "__main__":
    main()
