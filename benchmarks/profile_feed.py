"""Where a feed request's time goes, on a trained store, after 50 warm-up pages. Writes impressions into the store
(unless ``--no-impressions``): run it on a copy.

- default: cProfile over ``--requests`` pages (impressions logged, as the server does); prints the mean time a
  request under the profiler and the top functions by cumulative time;
- ``--stages``: no profiler; the pipeline's stages, each candidate source and the page's items are wrapped in
  timers (wall and thread CPU), so the shares are those of an unprofiled request (cProfile inflates the
  Python-heavy parts several times over the numpy and LightGBM ones).

Run: ``python -m benchmarks.profile_feed --db <copy of a trained store> [--requests 200] [--limit 20] [--stages]``.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import glassfeed.feed.pipeline as pipeline
import glassfeed.feed.service as service
from benchmarks.common import machine
from glassfeed.feed.service import FeedService
from glassfeed.feed.sources import SOURCE_FUNCS
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store

#: What ``--stages`` times: functions of ``feed.pipeline`` as it calls them, and ``FeedService`` methods.
PIPELINE_STAGES = (
    "candidates",
    "pair_context",
    "apply_filters",
    "pair_features",
    "top_k_per_row",
    "apply_adjustments",
    "topic_preference",
    "explore",
    "assemble_pages",
)
SERVICE_STAGES = ("_items", "post_views", "_remember")


@contextmanager
def stage_timers(svc: FeedService) -> Iterator[dict[str, list[float]]]:
    """Wrap the stages in timers for the duration: ``{stage: [wall s, thread CPU s, calls]}``."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    undo: list[Callable[[], None]] = []

    def timed(label: str, f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def g(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                row = totals[label]
                row[0] += time.perf_counter() - t
                row[1] += time.thread_time() - c
                row[2] += 1

        return g

    def patch(owner: Any, name: str, label: str) -> None:
        f = owner[name] if isinstance(owner, dict) else getattr(owner, name)
        if isinstance(owner, dict):
            owner[name] = timed(label, f)
            undo.append(lambda: owner.__setitem__(name, f))
        else:
            setattr(owner, name, timed(label, f))
            undo.append(lambda: setattr(owner, name, f))

    patch(service, "rank", "rank")
    for name in PIPELINE_STAGES:
        if hasattr(pipeline, name):
            patch(pipeline, name, name)
    for name in list(SOURCE_FUNCS):
        patch(SOURCE_FUNCS, name, f"source {name}")
    for name in SERVICE_STAGES:
        patch(FeedService, name, f"service {name}")
    patch(type(svc.models.heads), "predict", "heads predict")
    patch(type(svc.models.light), "score", "light ranker score")
    try:
        yield totals
    finally:
        for f in reversed(undo):
            f()


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--stages", action="store_true", help="time the stages without a profiler")
    ap.add_argument("--no-impressions", action="store_true", help="serve pages without logging impressions")
    ap.add_argument("--no-compiled-trees", action="store_true", help="LightGBM's predict (servers compile trees)")
    args = ap.parse_args(argv)
    log = not args.no_impressions
    print(machine())
    svc = FeedService(Ingestor(open_store(args.db)), clock="data", compile_trees=not args.no_compiled_trees)
    st = svc.state
    rng = np.random.default_rng(0)
    active = [u for u in range(1, st.n_users + 1) if st.graph.following(u)]
    for u in rng.choice(active, 50).tolist():
        svc.feed(st.users.id_of(u), limit=args.limit, log_impressions=log)
    users = rng.choice(active, args.requests).tolist()
    if args.stages:
        with stage_timers(svc) as totals:
            t, c = time.perf_counter(), time.process_time()
            for u in users:
                svc.feed(st.users.id_of(u), limit=args.limit, log_impressions=log)
            ms = (time.perf_counter() - t) / len(users) * 1e3
            cpu = (time.process_time() - c) / len(users) * 1e3
        print(f"{ms:.2f} ms a request (process CPU {cpu:.2f} ms), {len(users)} requests, limit {args.limit}")
        print(f"{'stage':32s} {'wall ms':>8s} {'CPU ms':>8s} {'calls':>6s}  (per request)")
        for label, (wall, thread_cpu, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
            n = len(users)
            print(f"{label:32s} {wall / n * 1e3:8.3f} {thread_cpu / n * 1e3:8.3f} {calls / n:6.1f}")
    else:
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        for u in users:
            svc.feed(st.users.id_of(u), limit=args.limit, log_impressions=log)
        prof.disable()
        ms = (time.perf_counter() - t) / len(users) * 1e3
        print(f"{ms:.1f} ms a request under the profiler")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
    svc.close()
    return ms


if __name__ == "__main__":
    main()
