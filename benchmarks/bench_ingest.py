"""Ingestion throughput: bulk JSONL import (events/s) and HTTP batch ingestion on a real uvicorn process.

Run: ``python -m benchmarks.bench_ingest [--events N] [--repeats R] [--http-batches B] [--generate]``.
Setup: a fresh SQLite store (WAL, synchronous=FULL) with 10,000 users and 100,000 posts. Prints the machine,
every repeat and the medians, then one JSON line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from benchmarks.common import api_server, machine, process_cpu
from glassfeed.bulk import import_path
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store

N_USERS, N_POSTS, T0 = 10_000, 100_000, 1_760_000_000.0
KINDS = ["impression"] * 6 + ["click", "like", "dwell", "repost"]


def events(n: int, seed: int, with_ids: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    u, p, k = rng.integers(0, N_USERS, n).tolist(), rng.integers(0, N_POSTS, n).tolist(), rng.integers(0, 10, n)
    out = []
    for i in range(n):
        kind = KINDS[k[i]]
        e = {"kind": kind, "user": f"u{u[i]}", "post": f"p{p[i]}", "ts": T0 + i * 0.01}
        if kind == "dwell":
            e["value"] = 1500
        if with_ids:
            e["id"] = f"s{seed}-{i}"
        out.append(e)
    return out


def setup(db: Path) -> None:
    st = open_store(db)
    ing = Ingestor(st)
    ing.create_users([{"id": f"u{i}"} for i in range(N_USERS)], with_tokens=False)
    for a in range(0, N_POSTS, 20_000):
        ing.create_posts(
            [
                {"id": f"p{i}", "author": f"u{i % N_USERS}", "text": f"post {i}", "created_at": T0 - 1}
                for i in range(a, a + 20_000)
            ]
        )
    st.close()


def bench_bulk(db: Path, tmp: Path, n: int, repeats: int, chunk: int | None, with_ids: bool = False) -> list[float]:
    rates = []
    for r in range(repeats):
        f = tmp / f"ev{r}.jsonl"
        f.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events(n, 100 + r + (50 if with_ids else 0), with_ids)))
        st = open_store(db)
        ing = Ingestor(st)
        t, c = time.perf_counter(), time.process_time()
        res = import_path(f, ing, chunk=chunk)
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        st.close()
        assert res.accepted == n
        rates.append(n / dt)
        print(
            f"  bulk chunk={chunk or 'default (bulk_chunk)'} ids={with_ids}: {n:,} events in {dt:.2f} s"
            f" = {n / dt:,.0f}/s wall, {n / cpu:,.0f}/CPU-s ({res.chunks} chunks;"
            f" load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    return rates


def bench_http(db: Path, batches: int, batch: int) -> list[float]:
    env = {"GLASSFEED_DB": str(db), "GLASSFEED_API_KEY": "bench"}
    with api_server(env, attempts=300) as (proc, url):
        bodies = [orjson.dumps(events(batch, 1000 + b)) for b in range(batches)]
        rates = []
        cpu0 = process_cpu(proc.pid)
        with httpx.Client(
            base_url=url, headers={"X-API-Key": "bench", "content-type": "application/json"}, timeout=120
        ) as c:
            c.post("/v1/events", content=bodies[0])  # warm-up
            for body in bodies[1:]:
                t = time.perf_counter()
                r = c.post("/v1/events", content=body)
                dt = time.perf_counter() - t
                assert r.status_code == 200 and r.json()["accepted"] == batch, r.text[:300]
                rates.append(batch / dt)
        cpu = process_cpu(proc.pid) - cpu0
        print("  http per-batch events/s: " + ", ".join(f"{x:,.0f}" for x in rates), flush=True)
        print(f"  http server CPU: {batch * len(rates) / cpu:,.0f} events/CPU-s (load {os.getloadavg()[0]:.1f})")
        return rates


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--http-batches", type=int, default=11)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--generate", action="store_true", help="also time `glassfeed generate` 10k users x 30 days")
    a = ap.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gf-bench-"))
    out: dict = {"machine": machine()}
    try:
        db = tmp / "bench.db"
        setup(db)
        out["bulk_eps_max_batch"] = statistics.median(bench_bulk(db, tmp, a.events, a.repeats, None))
        out["bulk_eps_chunk_100k"] = statistics.median(bench_bulk(db, tmp, a.events, a.repeats, 100_000))
        out["bulk_eps_with_ids"] = statistics.median(bench_bulk(db, tmp, a.events // 5, a.repeats, None, True))
        out["http_eps_median"] = statistics.median(bench_http(db, a.http_batches, a.batch))
        if a.generate:
            g = tmp / "gen.db"
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "glassfeed.cli",
                    "generate",
                    "--users",
                    "10000",
                    "--days",
                    "30",
                    "--seed",
                    "1",
                    "--db",
                    str(g),
                ],
                check=True,
            )
            out["generate_s"] = time.perf_counter() - t
            st = open_store(g)
            out["generate_counts"] = {t_: st.count(t_) for t_ in ("users", "posts", "follows", "events")}
            st.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_at_end"] = os.getloadavg()[0]
    print(orjson.dumps(out).decode())
    return out


if __name__ == "__main__":
    main()
