"""Paired A/B of the in-process feed: two long-lived workers, one per source tree, each on its own copy of one
trained store, take turns serving blocks of the same requests (A B, B A, ...), so the slow drifts of a shared
machine hit both alike. Resolves changes of a few percent where ``compare_commits`` (fresh processes, a few
rounds) cannot (docs/benchmarks.md, "Why a request costs 2-4x the earlier figures").

Prints per side the wall and thread-CPU percentiles of a 50-item page, and B/A ratios: the median over blocks of
each block's median, and pooled. The store's models must load in both trees (same ``FEATURES``). Each worker builds
its ``FeedService`` as that tree's HTTP server does (heads' trees compiled where the tree has ``compile_trees``).

Usage: python -m benchmarks.paired_feed TREE_A TREE_B STORE [--blocks 20] [--requests 100] [--work DIR]
(``--worker STORE`` is the worker's own mode: it reads "N SEED" lines and answers one JSON line each.)
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine


def worker(db: Path) -> None:
    """Serve N 50-item pages for random active people (seeded) per stdin line; answer wall and CPU ms."""
    from glassfeed.feed.service import FeedService
    from glassfeed.ingest import Ingestor
    from glassfeed.store import open_store

    # as that tree's HTTP server builds it: with the heads' trees compiled where the tree can (feed/compiled.py)
    compiled = "compile_trees" in inspect.signature(FeedService).parameters
    svc = FeedService(Ingestor(open_store(db)), clock="data", **({"compile_trees": True} if compiled else {}))
    st = svc.state
    active = [u for u in range(1, st.n_users + 1) if st.graph.following(u)]
    for u in np.random.default_rng(123).choice(active, 100).tolist():  # warm-up
        svc.feed(st.users.id_of(u), limit=50, log_impressions=False)
    heads = sorted(getattr(svc.models.heads, "compiled", {}))
    print(json.dumps({"ready": __import__("glassfeed").__file__, "compiled": heads}), flush=True)
    for line in sys.stdin:
        n, seed = map(int, line.split())
        lat, cpu = [], []
        for u in np.random.default_rng(seed).choice(active, n).tolist():
            t, c = time.perf_counter(), time.thread_time()
            svc.feed(st.users.id_of(u), limit=50, log_impressions=False)
            lat.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
        print(json.dumps({"lat": lat, "cpu": cpu, "load": os.getloadavg()[0]}), flush=True)
    svc.close()


def _pct(x: list[float]) -> str:
    return " ".join(f"p{q} {np.percentile(x, q):.2f}" for q in (50, 90, 99)) + f" mean {np.mean(x):.2f}"


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", type=Path, help="TREE_A TREE_B STORE")
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100, help="requests per block and side")
    ap.add_argument("--work", type=Path, default=None, help="where the two store copies go (default: a temp dir)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker)
        return {}
    if len(a.trees) != 3:
        ap.error("give TREE_A TREE_B STORE")
    tree_a, tree_b, store = (p.resolve() for p in a.trees)
    work = a.work or Path(tempfile.mkdtemp(prefix="gf-paired-"))
    print(machine(), flush=True)
    procs: dict[str, subprocess.Popen[str]] = {}
    for side, tree in (("A", tree_a), ("B", tree_b)):
        d = work / side
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        shutil.copy2(store, d / store.name)  # a store at rest (no WAL): copy it with sqlite3's backup otherwise
        shutil.copytree(store.with_name(store.name + ".models"), d / (store.name + ".models"))
        env = {**os.environ, "PYTHONPATH": f"{tree}/src:{Path(__file__).resolve().parents[1]}"}
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        procs[side] = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(d / store.name)],  # this file, any tree
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    for side, p in procs.items():
        assert p.stdout is not None
        ready = json.loads(p.stdout.readline())
        print(side, "imports", ready["ready"], "compiled heads:", ready["compiled"] or "none", flush=True)
    lat: dict[str, list[float]] = {"A": [], "B": []}
    cpu: dict[str, list[float]] = {"A": [], "B": []}
    blocks: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    loads: list[float] = []
    for i in range(a.blocks):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            p = procs[side]
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write(f"{a.requests} {1000 + i}\n")
            p.stdin.flush()
            r = json.loads(p.stdout.readline())
            lat[side] += r["lat"]
            cpu[side] += r["cpu"]
            blocks[side].append((float(np.median(r["lat"])), float(np.median(r["cpu"]))))
            loads.append(r["load"])
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    for side, tree in (("A", tree_a), ("B", tree_b)):
        print(f"{side} {tree}: wall {_pct(lat[side])} | thread CPU {_pct(cpu[side])}")
    ratio = np.array(blocks["B"]) / np.array(blocks["A"])
    out = {
        "block_wall_p50": float(np.median(ratio[:, 0])),
        "block_cpu_p50": float(np.median(ratio[:, 1])),
        "wall_p50": float(np.percentile(lat["B"], 50) / np.percentile(lat["A"], 50)),
        "wall_p99": float(np.percentile(lat["B"], 99) / np.percentile(lat["A"], 99)),
        "cpu_mean": float(np.mean(cpu["B"]) / np.mean(cpu["A"])),
    }
    print(
        f"B/A: per block (median of the blocks' medians) wall {out['block_wall_p50']:.3f} "
        f"(IQR {np.percentile(ratio[:, 0], 25):.3f}-{np.percentile(ratio[:, 0], 75):.3f}), CPU "
        f"{out['block_cpu_p50']:.3f}; pooled wall p50 {out['wall_p50']:.3f}, p99 {out['wall_p99']:.3f}, CPU mean "
        f"{out['cpu_mean']:.3f}; load {min(loads):.2f}-{max(loads):.2f}; {a.blocks} blocks x {a.requests} requests"
    )
    return out


if __name__ == "__main__":
    main()
