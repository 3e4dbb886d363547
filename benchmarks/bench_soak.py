"""Soak: mixed reads and writes at a steady rate against a real uvicorn process on loopback, for minutes.

Run: ``python -m benchmarks.bench_soak [--seconds 600] [--rate 40] [--concurrency 8] [--users 2000] [--days 7]``
(``make soak``). Setup: ``glassfeed generate`` (a synthetic society, its history ending now) and ``glassfeed
train`` into a temporary store, then ``uvicorn --factory glassfeed.api.app:create_app`` with a service key.

The load is open-loop: request *i* is due at ``start + i / rate`` whatever the earlier answers took, spread over
``--concurrency`` client threads, and it stops at ``--seconds`` or ``--max-requests``, whichever comes first.
The mix (weights in ``MIX``): personal feeds (with the next page now and then), anonymous feeds (3 %: under the
anonymous rate limit up to about 150 requests/s), "why this post", profiles, preferences read and written, batches
of clicks and likes on served posts (client ids; the server logs the impressions of every page it serves), new
users, new posts, stats.

Prints the machine, then: requests and errors (any answer other than the expected 2xx, any exception, any
traceback in the server's log), latency percentiles per kind of request, how late the schedule ran, and the
server's resident memory (``VmRSS`` from ``/proc/<pid>/status`` once a second): at the start and end of the
steady window and its least-squares slope after ``--warmup`` seconds, in MB per minute and per 100k events
written (memory that grows with the data is not a leak; memory that grows with time is). One JSON line last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import machine
from glassfeed.store import open_store

KEY = "soak-key"
H = {"X-API-Key": KEY}
#: request kind -> weight in the mix
MIX: dict[str, int] = {
    "feed": 38,
    "feed_next_page": 6,
    "feed_anonymous": 3,
    "why": 5,
    "user": 4,
    "prefs_get": 3,
    "prefs_put": 2,
    "events": 28,
    "users_new": 2,
    "posts_new": 5,
    "stats": 4,
}
#: Idle connections are dropped by the client before the server's keep-alive timeout (uvicorn: 5 s) can close
#: them: otherwise a request sent on a connection the server is closing at that moment is reset (the race every
#: HTTP/1.1 client must avoid or retry; a POST cannot be retried blindly).
LIMITS = httpx.Limits(keepalive_expiry=2.0)
EVENTS_PER_BATCH = 20  # clicks on served posts, plus a like for every fifth


def _glassfeed(*args: str, env: dict[str, str]) -> None:
    exe = Path(sys.executable).with_name("glassfeed")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from glassfeed.cli import app; app()"]
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"glassfeed {' '.join(args)} failed: {(done.stdout + done.stderr)[-2000:]}")


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Server:
    """The API in its own process, on a free loopback port; stderr kept in a file."""

    def __init__(self, db: Path, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "GLASSFEED_DB": str(db), "GLASSFEED_API_KEY": KEY}
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "glassfeed.api.app:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                env=env, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not answer /healthz within 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Load:
    """The open-loop schedule and what came back (shared by the client threads)."""

    def __init__(self, url: str, users: list[str], posts: list[str], rate: float, seconds: float, max_requests: int):
        self.url, self.users, self.rate = url, users, rate
        self.recent_posts: deque[str] = deque(posts[-2000:], maxlen=5000)
        self.served: deque[tuple[str, str, str, int]] = deque(maxlen=2000)  # (user, post, request_id, position)
        self.cursors: deque[tuple[str, str]] = deque(maxlen=200)  # (user, cursor)
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]
        self.counter = itertools.count()
        self.max_requests = max_requests
        self.start = time.monotonic() + 0.5
        self.end = self.start + seconds
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.lateness: list[float] = []
        self.errors: Counter = Counter()
        self.error_samples: dict[str, str] = {}
        self.sent = 0
        self.seq = itertools.count()

    def record(self, kind: str, dt: float, late: float, error: str | None, sample: str = "") -> None:
        with self.lock:
            self.sent += 1
            self.latency[kind].append(dt)
            self.lateness.append(late)
            if error:
                self.errors[f"{kind}: {error}"] += 1
                self.error_samples.setdefault(f"{kind}: {error}", sample[:300])

    def request(self, c: httpx.Client, anon: httpx.Client, rng: random.Random, kind: str) -> tuple[httpx.Response, int]:
        """Send one request of ``kind``; returns the response and the status it should have."""
        u = rng.choice(self.users)
        if kind == "feed_next_page" and self.cursors:
            u, cur = self.cursors[rng.randrange(len(self.cursors))]
            return c.get(f"/v1/users/{u}/feed", params={"cursor": cur, "limit": 20}), 200
        if kind in ("feed", "feed_next_page"):
            r = c.get(f"/v1/users/{u}/feed", params={"limit": 20})
            if r.status_code == 200:
                body = r.json()
                items = body.get("items", [])
                self.served.extend((u, it["post"], body.get("request_id") or "", i) for i, it in enumerate(items))
                if body.get("cursor"):
                    self.cursors.append((u, body["cursor"]))
            return r, 200
        if kind == "feed_anonymous":
            return anon.get("/v1/feed", params={"limit": 20}), 200
        if kind == "why" and self.served:
            su, sp, _, _ = self.served[rng.randrange(len(self.served))]
            return c.get(f"/v1/users/{su}/feed/{sp}/why"), 200
        if kind in ("why", "user"):
            return c.get(f"/v1/users/{u}"), 200
        if kind == "prefs_get":
            return c.get(f"/v1/users/{u}/prefs"), 200
        if kind == "prefs_put":
            topics = rng.sample(["politics", "sports", "science", "music", "tech"], 2)
            return c.put(f"/v1/users/{u}/prefs", json={"topics_more": topics[:1], "topics_less": topics[1:]}), 200
        if kind == "events":
            now = time.time()
            picks = (
                [self.served[rng.randrange(len(self.served))] for _ in range(EVENTS_PER_BATCH)] if self.served else []
            )
            events = []
            for j, (su, sp, rid, pos) in enumerate(picks):
                ev = {"id": f"soak-{next(self.seq)}", "kind": "click", "user": su, "post": sp, "ts": now,
                      "position": pos}  # fmt: skip
                if rid:
                    ev["request_id"] = rid
                events.append(ev)
                if j % 5 == 0:
                    events.append({**ev, "id": f"soak-{next(self.seq)}", "kind": "like"})
            if not events:
                sp = self.recent_posts[-1]
                events = [{"id": f"soak-{next(self.seq)}", "kind": "impression", "user": u, "post": sp, "ts": now}]
            return c.post("/v1/events", json=events), 200
        if kind == "users_new":
            uid = f"soak-u{next(self.seq)}"
            r = c.post("/v1/users", json=[{"id": uid, "interests": ["science"]}])
            if r.status_code == 201:
                with self.lock:
                    self.users.append(uid)
            return r, 201
        if kind == "posts_new":
            pid = f"soak-p{next(self.seq)}"
            r = c.post("/v1/posts", json=[{"id": pid, "author": u, "text": f"soak post {pid} #science",
                                           "created_at": time.time()}])  # fmt: skip
            if r.status_code == 201:
                self.recent_posts.append(pid)
            return r, 201
        return c.get("/v1/stats"), 200

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        with (
            httpx.Client(base_url=self.url, headers=H, timeout=30, limits=LIMITS) as c,
            httpx.Client(base_url=self.url, timeout=30, limits=LIMITS) as anon,
        ):
            while True:
                i = next(self.counter)
                due = self.start + i / self.rate
                if i >= self.max_requests or due >= self.end:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                late = max(0.0, time.monotonic() - due)
                kind = rng.choices(self.kinds, self.weights)[0]
                t = time.perf_counter()
                try:
                    r, expect = self.request(c, anon, rng, kind)
                    dt = time.perf_counter() - t
                    err = None if r.status_code == expect else str(r.status_code)
                    self.record(kind, dt, late, err, f"{r.request.method} {r.request.url} -> {r.text[:200]}")
                except httpx.HTTPError as e:
                    self.record(kind, time.perf_counter() - t, late, type(e).__name__, str(e))


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    if not len(a):
        return {}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": len(a), "p50_ms": round(p50, 1), "p90_ms": round(p90, 1), "p99_ms": round(p99, 1),
            "max_ms": round(float(a.max()), 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600, help="length of the load (default 10 minutes)")
    ap.add_argument("--rate", type=float, default=40, help="requests per second, steady")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads")
    ap.add_argument("--max-requests", type=int, default=None, help="stop after this many (default rate*seconds)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds left out of the RSS slope (default 20%%)")
    ap.add_argument("--users", type=int, default=2000, help="synthetic users generated before the load")
    ap.add_argument("--days", type=int, default=7, help="days of synthetic history")
    ap.add_argument("--no-train", action="store_true", help="serve without trained models")
    ap.add_argument("--keep", type=Path, default=None, help="keep the store and the server log in this folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    a = ap.parse_args(argv)
    max_requests = a.max_requests or int(a.rate * a.seconds) + 1
    warmup = a.warmup if a.warmup is not None else 0.2 * a.seconds
    print(f"machine: {machine()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="glassfeed-soak-"))
    db, log = tmp / "soak.db", tmp / "server.log"
    env = {**os.environ, "GLASSFEED_DB": str(db)}
    t = time.perf_counter()
    _glassfeed("generate", "--users", str(a.users), "--days", str(a.days), "--db", str(db), env=env)
    if not a.no_train:
        _glassfeed("train", "--db", str(db), env=env)
    st = open_store(db)
    users, posts = list(st.user_ids()), list(st.post_ids())
    st.close()
    print(f"setup: {len(users):,} users, {len(posts):,} posts, trained={not a.no_train} in "
          f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    srv = Server(db, log)
    try:
        stats0 = httpx.get(srv.url + "/v1/stats", timeout=10).json()
        load = Load(srv.url, users, posts, a.rate, a.seconds, max_requests)
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample_rss() -> None:
            while not done.is_set():
                kb = _rss_kb(srv.proc.pid)
                if kb is not None:
                    samples.append((time.monotonic() - load.start, kb))
                done.wait(1.0)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=load.worker, args=(k,), daemon=True) for k in range(a.concurrency)]
        for th in threads:
            th.start()
        last = time.monotonic()
        while any(th.is_alive() for th in threads):
            time.sleep(1)
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                rss = samples[-1][1] / 1024 if samples else float("nan")
                print(f"  t={last - load.start:5.0f} s: {load.sent:,} requests, {sum(load.errors.values())} errors, "
                      f"RSS {rss:.0f} MB", flush=True)  # fmt: skip
        for th in threads:
            th.join()
        done.set()
        sampler.join(5)
        stats1 = httpx.get(srv.url + "/v1/stats", timeout=10).json()
        alive = srv.proc.poll() is None
    finally:
        srv.stop()
    server_log = log.read_text(errors="replace") if log.exists() else ""
    tracebacks = server_log.count("Traceback (most recent call last)")
    elapsed = max(s for s, _ in samples) if samples else 0.0
    steady = [(s, kb) for s, kb in samples if warmup <= s <= a.seconds]
    slope_mb_min = float("nan")
    if len(steady) >= 3:
        xs, ys = np.array([s for s, _ in steady]), np.array([kb / 1024 for _, kb in steady])
        slope_mb_min = float(np.polyfit(xs, ys, 1)[0] * 60)
    new_events = stats1["events"] - stats0["events"]
    steady_s = (steady[-1][0] - steady[0][0]) if len(steady) >= 2 else 0.0
    events_in_steady = new_events * steady_s / max(elapsed, 1e-9)
    all_lat = [x for xs in load.latency.values() for x in xs]
    result: dict[str, Any] = {
        "benchmark": "soak",
        "machine": machine(),
        "seconds": a.seconds,
        "rate": a.rate,
        "requests": load.sent,
        "achieved_rate": round(load.sent / max(elapsed, 1e-9), 1),
        "errors": sum(load.errors.values()) + tracebacks + (0 if alive else 1),
        "error_kinds": dict(load.errors.most_common()),
        "error_samples": load.error_samples,
        "server_tracebacks": tracebacks,
        "server_alive": alive,
        "latency_all": _pct(all_lat),
        "latency": {k: _pct(v) for k, v in sorted(load.latency.items())},
        "schedule_late_p99_ms": round(float(np.percentile(load.lateness, 99)) * 1000, 1) if load.lateness else None,
        "rss_mb": {
            "first": round(samples[0][1] / 1024, 1) if samples else None,
            "steady_start": round(steady[0][1] / 1024, 1) if steady else None,
            "steady_end": round(steady[-1][1] / 1024, 1) if steady else None,
            "max": round(max(kb for _, kb in samples) / 1024, 1) if samples else None,
            "slope_mb_per_min_after_warmup": round(slope_mb_min, 3),
            "slope_mb_per_100k_events": round(slope_mb_min * steady_s / 60 / max(events_in_steady, 1) * 1e5, 2)
            if steady_s
            else None,
            "warmup_s": warmup,
            "samples": len(samples),
        },
        "data_written": {k: stats1[k] - stats0[k] for k in ("users", "posts", "events")},
    }
    print(f"\nrequests {load.sent:,} in {elapsed:.0f} s ({result['achieved_rate']}/s of {a.rate}/s asked), "
          f"errors {result['errors']} (server tracebacks {tracebacks}, server alive {alive})")  # fmt: skip
    for k, n in load.errors.most_common():
        print(f"  error x{n}: {k}  e.g. {load.error_samples.get(k, '')}")
    print(f"{'request':<16}{'n':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for k, p in [("all", result["latency_all"]), *result["latency"].items()]:
        print(f"{k:<16}{p['n']:>8}{p['p50_ms']:>9}{p['p90_ms']:>9}{p['p99_ms']:>9}{p['max_ms']:>9}")
    r = result["rss_mb"]
    print(f"schedule lateness p99 {result['schedule_late_p99_ms']} ms; written {result['data_written']}")
    print(f"RSS MB: first {r['first']}, after warm-up ({warmup:.0f} s) {r['steady_start']} -> end {r['steady_end']},"
          f" max {r['max']}; slope after warm-up {r['slope_mb_per_min_after_warmup']} MB/min"
          f" ({r['slope_mb_per_100k_events']} MB per 100k events written)")  # fmt: skip
    print(json.dumps(result))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            shutil.move(str(f), a.keep / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    res = main()
    sys.exit(1 if res["errors"] else 0)
