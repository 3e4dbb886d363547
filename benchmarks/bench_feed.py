"""Feed serving latency: in-process p50/p99 for a 50-item page, and HTTP p99 under open-loop load.

Builds (or reuses, with --db) the synthetic network of `glassfeed generate --users 10000 --days 30`, trains the
models, then:
1. in-process: FeedService.feed for random users (all sources, light ranker, heads, explanations), repeated
   runs; medians of per-run p50/p99 are reported (impression logging measured separately);
2. HTTP: ``glassfeed serve --workers N`` for each N of ``--workers`` in turn, on the same store; an open-loop
   client (``benchmarks.open_loop``: raw asyncio, keep-alive connections, on the same cores) sends requests on a
   fixed schedule (latency counted from the scheduled send time, so queueing shows) at 100 req/s, then ramps the
   rate to find the highest rate whose p99 stays <= 100 ms; the ratio of that rate to one worker's. Each run
   also reports the server's CPU per request (and each worker's share), the client's CPU per 1000 requests and
   its send lag (how late it sent: a client starved of CPU shows there, not as server latency).
Usage: python -m benchmarks.bench_feed [--db PATH] [--users 10000 --days 30] [--seconds 15] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import glassfeed_serve, machine, process_cpu
from benchmarks.open_loop import open_loop
from glassfeed.feed.pipeline import rank
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store


def build_store(folder: Path, users: int, days: int, seed: int) -> Path:
    db = folder / "feed-bench.db"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "glassfeed.cli",
            "generate",
            "--users",
            str(users),
            "--days",
            str(days),
            "--seed",
            str(seed),
            "--db",
            str(db),
        ],
        check=True,
        env=env,
    )
    print(f"generate: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "glassfeed.cli", "train", "--db", str(db), "--max-rows", "200000"], check=True, env=env
    )
    print(f"train: {time.perf_counter() - t:.1f} s", flush=True)
    return db


def in_process(db: Path, n_requests: int, repeats: int, seed: int = 0, compiled_trees: bool = True) -> dict:
    t = time.perf_counter()
    # as the HTTP server builds it ([serving] compiled_trees, on by default): heads' trees compiled at load
    svc = FeedService(Ingestor(open_store(db)), clock="data", compile_trees=compiled_trees)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(seed)
    st = svc.state
    active = [u for u in range(1, st.n_users + 1) if st.graph.following(u)]
    runs: list[tuple[float, float]] = []
    cpu_runs: list[float] = []  # median CPU time of a request (less disturbed by other jobs than wall time)
    cands = []
    for r in range(repeats + 1):
        users = rng.choice(active, n_requests)
        lat, cpu = [], []
        for u in users.tolist():
            t, c = time.perf_counter(), time.thread_time()
            page = svc.feed(st.users.id_of(u), limit=50, log_impressions=False)
            lat.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            cands.append(page["candidates"])
        if r:  # the first run warms caches and the ANN index
            runs.append((float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3)))
            cpu_runs.append(float(np.median(cpu) * 1e3))
    # the durable impression write that the server adds to each request
    log = []
    for u in rng.choice(active, 100).tolist():
        page = svc.feed(st.users.id_of(u), limit=50, log_impressions=False)
        pages = rank(st, svc.models, np.array([u]), svc.policy_for(u, None), svc.now(), 50)
        t = time.perf_counter()
        svc._log_impressions(u, pages, svc.now(), "bench.0", "home")
        log.append(time.perf_counter() - t)
    out = {
        "state_load_s": load_s,
        "requests_per_run": n_requests,
        "runs": runs,
        "p50_ms": float(np.median([r[0] for r in runs])),
        "p99_ms": float(np.median([r[1] for r in runs])),
        "cpu_p50_ms": float(np.median(cpu_runs)),
        "candidates_median": float(np.median(cands)),
        "impression_log_p50_ms": float(np.median(log) * 1e3),
        "impression_log_p99_ms": float(np.percentile(log, 99) * 1e3),
        "compiled_heads": sorted(svc.models.heads.compiled),
    }
    print(
        f"in-process: p50 {out['p50_ms']:.2f} ms, p99 {out['p99_ms']:.2f} ms (median of {repeats} runs x "
        f"{n_requests} requests; runs {[(round(a, 2), round(b, 2)) for a, b in runs]}); CPU per request median "
        f"{out['cpu_p50_ms']:.2f} ms; candidates/request "
        f"median {out['candidates_median']:.0f}; impression log write p50 {out['impression_log_p50_ms']:.2f} ms "
        f"p99 {out['impression_log_p99_ms']:.2f} ms; state load {load_s:.1f} s; compiled heads "
        f"{out['compiled_heads'] or 'none (LightGBM predict)'}",
        flush=True,
    )
    return out


def _load_run(url: str, paths: list[str], rate: float, seconds: float, pids: list[int]) -> dict:
    """One open-loop run: its latency percentiles, failures, the client's CPU per 1000 requests and the server's
    CPU per request (all its threads: the route, the impression writer, the tail), with each worker's share."""
    before = [process_cpu(p) for p in pids]
    res = open_loop(url, paths, {"X-API-Key": "bench"}, rate, seconds)
    used = [process_cpu(p) - c for p, c in zip(pids, before, strict=True)]
    n = len(res.latency)
    p50, p99 = res.percentiles_ms()
    return {
        "rate": rate,
        "seconds": seconds,
        "p50_ms": p50,
        "p99_ms": p99,
        "failed": res.failed,
        "sent": n,
        "connections": res.connections,
        "client_cpu_s_per_1000": res.client_cpu_s_per_1000,
        "client_send_lag_p99_ms": float(np.nanpercentile(res.send_lag, 99) * 1e3),
        "client_send_lag_max_ms": float(np.nanmax(res.send_lag) * 1e3),
        "server_cpu_ms_per_request": sum(used) / n * 1e3,
        "server_cpu_share_by_worker": [c / max(1e-9, sum(used)) for c in used],
        "load": os.getloadavg()[0],
    }


def _print_run(workers: int, r: dict) -> None:
    shares = "/".join(f"{s:.2f}" for s in r["server_cpu_share_by_worker"])
    print(
        f"  workers {workers}, {r['rate']:.0f} req/s x {r['seconds']:.0f} s: p50 {r['p50_ms']:.1f} ms, p99 "
        f"{r['p99_ms']:.1f} ms, failed {r['failed']}/{r['sent']}; server CPU {r['server_cpu_ms_per_request']:.2f} "
        f"ms/request (worker shares {shares}); client CPU {r['client_cpu_s_per_1000']:.2f} s/1000 requests, "
        f"{r['connections']} connections, send lag p99 {r['client_send_lag_p99_ms']:.1f} ms max "
        f"{r['client_send_lag_max_ms']:.1f} ms; load {r['load']:.2f}",
        flush=True,
    )


def http(
    db: Path,
    workers_list: list[int],
    rates: list[float],
    seconds: float,
    at_rate: float = 100.0,
    redis_url: str | None = None,
    warmup_s: float = 10.0,
    extra_env: dict[str, str] | None = None,
) -> dict:
    """For each worker count, ``glassfeed serve --workers N`` on ``db``: the open loop at ``at_rate``, then the
    ramp over ``rates`` (stopping at the first rate whose p99 passes 100 ms or that has a failure)."""
    env = {
        "GLASSFEED_DB": str(db),
        "GLASSFEED_API_KEY": "bench",
        "GLASSFEED_SERVING__CLOCK": "data",
        "OPENBLAS_NUM_THREADS": "1",
    }
    if redis_url:
        env |= {"GLASSFEED_SERVING__REDIS_URL": redis_url, "GLASSFEED_SERVING__REDIS_PREFIX": f"bench{os.getpid()}:"}
    env |= extra_env or {}
    os.environ.pop("GLASSFEED_CONFIG", None)
    users = np.random.default_rng(1).choice(10_000, 2000).tolist()
    paths = [f"/v1/users/u{u}/feed?limit=50" for u in users]
    out: dict = {"workers": {}}
    for workers in workers_list:
        log = db.with_name(f"serve-{workers}w.log")
        t = time.perf_counter()
        with glassfeed_serve(env, workers, log) as (_proc, url, pids):
            print(f"workers {workers}: serving after {time.perf_counter() - t:.1f} s (log {log})", flush=True)
            open_loop(url, paths, {"X-API-Key": "bench"}, 50, warmup_s)  # caches, ANN index, every worker
            fixed = _load_run(url, paths, at_rate, seconds, pids)
            _print_run(workers, fixed)
            ramp, best = [], None
            for rate in rates:
                r = _load_run(url, paths, rate, seconds, pids)
                _print_run(workers, r)
                ramp.append(r)
                if r["p99_ms"] <= 100 and r["failed"] == 0:
                    best = rate
                else:
                    break
        out["workers"][workers] = {"at_rate": fixed, "ramp": ramp, "max_rate_p99_le_100ms": best}
        print(f"workers {workers}: at {at_rate:.0f} req/s p99 {fixed['p99_ms']:.1f} ms; highest rate with p99 <= 100 "
              f"ms: {best} req/s", flush=True)  # fmt: skip
    bests = {w: v["max_rate_p99_le_100ms"] for w, v in out["workers"].items()}
    if bests.get(1):
        out["ratio_to_one_worker"] = {w: b / bests[1] for w, b in bests.items() if b and w != 1}
        print(f"highest rate relative to one worker: {out['ratio_to_one_worker']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", type=Path, help="a trained store to reuse (default: build one)")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rates", default="60,80,100,120,140,160,180,200,225,250,300", help="the ramp's rates")
    ap.add_argument("--at-rate", type=float, default=100.0, help="the fixed-rate run before the ramp")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="serving worker counts to measure, in turn")
    ap.add_argument("--redis-url", help="[serving] redis_url for the workers (default: none)")
    ap.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="more environment for the server, e.g. "
        "GLASSFEED_SERVING__TAIL_INTERVAL_MS=0 (settings overrides); repeatable"
    )  # fmt: skip
    ap.add_argument("--warmup-seconds", type=float, default=10.0, help="at 50 req/s before the measured runs")
    ap.add_argument("--skip-in-process", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument(
        "--no-compiled-trees", action="store_true", help="in process: LightGBM's predict (servers compile the trees)"
    )
    a = ap.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    db = a.db or build_store(Path(tempfile.mkdtemp(prefix="gf-feed-bench-")), a.users, a.days, 1)
    res: dict = {"machine": machine()}
    if not a.skip_in_process:
        res["in_process"] = in_process(db, a.requests, a.repeats, compiled_trees=not a.no_compiled_trees)
    if not a.skip_http:
        rates = [float(r) for r in a.rates.split(",") if r.strip()]
        extra = dict(e.split("=", 1) for e in a.env)
        res["http"] = http(db, a.workers, rates, a.seconds, a.at_rate, a.redis_url, a.warmup_seconds, extra)
    res["machine_after"] = machine()
    print(f"machine after: {res['machine_after']}", flush=True)
    Path("bench-results").mkdir(exist_ok=True)
    Path("bench-results/feed.json").write_text(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    main()
