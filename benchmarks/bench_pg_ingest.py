"""Ingestion into PostgreSQL: bulk import against a raw ``COPY`` of the same rows, and HTTP ingestion.

Run: ``python -m benchmarks.bench_pg_ingest [--url postgresql://...] [--events N] [--repeats R]
[--http-batches B] [--batch S] [--no-sqlite]``.

Setup (``bench_ingest.setup``): a store in a fresh schema with 10,000 users and 100,000 posts, then ``2 × N``
events copied in untimed, so that every timed load below keeps the same indexes (``bulk_load`` rebuilds them only
for loads at least half the log). Each repeat, on the same ``events`` table, in this order:

1. **import**: ``glassfeed import`` of N events from JSONL (``bulk.import_path``: parse, validate, resolve ids,
   ``append_events`` in ``bulk_chunk`` transactions), the path an operator uses;
2. **append**: the same N rows already resolved (``EventBatch``) through ``Store.append_events`` in transactions
   of ``bulk_chunk`` (the path of ``generate``, the importers and the simulator);
3. **raw COPY**: the same N rows, already encoded (binary and CSV, the faster one counts), streamed by
   ``COPY events(...) FROM STDIN`` in one transaction: the database's own ceiling for this table.

Ratios are import / raw and append / raw per repeat; medians are printed. Then HTTP: ``POST /v1/events`` batches
of ``--batch`` events against a real uvicorn process on the PostgreSQL store (``bench_ingest.bench_http``), and,
unless ``--no-sqlite``, the same against a SQLite store in the same run (ratio PostgreSQL / SQLite). The schema is
dropped at the end. Prints the machine, every measurement and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import psycopg

from benchmarks.bench_ingest import bench_http, events, setup
from benchmarks.common import machine
from glassfeed.bulk import import_path
from glassfeed.domain import EventBatch
from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings
from glassfeed.store import open_store
from glassfeed.store.postgres import EVENT_COPY_COLUMNS, encode_events, split_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _sql(url: str) -> psycopg.Connection:
    conninfo, schema = split_url(url)
    con = psycopg.connect(conninfo, autocommit=True)
    con.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
    return con


def _max_seq(con: psycopg.Connection) -> int:
    row = con.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()
    return int(row[0]) if row else 0


def encode_binary(b: EventBatch, first: int) -> bytes:
    """``b`` numbered from ``first`` as the binary COPY stream the store itself sends (``encode_events``)."""
    return b"".join(encode_events(b.with_seq(first)))


def encode_csv(b: EventBatch, first: int) -> bytes:
    """``b`` numbered from ``first`` as CSV (empty field = NULL), as ``psql \\copy`` would send it."""
    lines = []
    for i, (k, u, p, t, ts, v, pos) in enumerate(
        zip(*(a.tolist() for a in (b.kind, b.user, b.post, b.target_user, b.ts, b.value, b.position)))
    ):
        lines.append(
            f"{first + i},{k},{u},{'' if p == -1 else p},{'' if t == -1 else t},{ts!r},"
            f"{'' if v != v else repr(v)},{'' if pos == -1 else pos}\n"
        )
    return "".join(lines).encode()


def raw_copy(url: str, data: bytes, fmt: str, n: int) -> float:
    """Seconds to stream ``data`` (``fmt``: binary or csv) into ``events`` in one transaction; the store's
    high-water mark is moved past the rows afterwards (untimed)."""
    block = 1 << 20
    with _sql(url) as con:
        t = time.perf_counter()
        with (
            con.transaction(),
            con.cursor() as cur,
            cur.copy(f"COPY events({EVENT_COPY_COLUMNS}) FROM STDIN (FORMAT {fmt})") as cp,
        ):
            for i in range(0, len(data), block):
                cp.write(data[i : i + block])
        dt = time.perf_counter() - t
        con.execute(
            "INSERT INTO meta(key, value) VALUES ('event_seq', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(_max_seq(con) + n),),
        )
    return dt


def bench_bulk_vs_copy(url: str, tmp: Path, n: int, repeats: int) -> dict:
    chunk = packaged_settings().ingest.bulk_chunk
    store = open_store(url)
    ing = Ingestor(store)
    pre = ing.parse_events(events(2 * n, 7))
    with _sql(url) as con:
        first = _max_seq(con) + 1
    raw_copy(url, encode_binary(pre, first), "binary", len(pre))  # untimed: indexes stay for every load below
    store.close()
    rows: dict[str, list[float]] = {"import": [], "append": [], "raw_binary": [], "raw_csv": []}
    for r in range(repeats):
        recs = events(n, 100 + r)
        f = tmp / f"ev{r}.jsonl"
        f.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in recs))
        store = open_store(url)
        ing = Ingestor(store)
        t = time.perf_counter()
        res = import_path(f, ing)
        rows["import"].append(n / (time.perf_counter() - t))
        assert res.accepted == n
        resolved = ing.parse_events(recs)
        t = time.perf_counter()
        with store.bulk_load(n):
            for a in range(0, n, chunk):
                with store.transaction() as tx:
                    store.append_events(tx, resolved.take(np.arange(a, min(n, a + chunk))))
        rows["append"].append(n / (time.perf_counter() - t))
        store.close()
        with _sql(url) as con:
            first = _max_seq(con) + 1
        rows["raw_binary"].append(n / raw_copy(url, encode_binary(resolved, first), "binary", n))
        with _sql(url) as con:
            first = _max_seq(con) + 1
        rows["raw_csv"].append(n / raw_copy(url, encode_csv(resolved, first), "csv", n))
        raw = max(rows["raw_binary"][-1], rows["raw_csv"][-1])
        print(
            f"  repeat {r}: import {rows['import'][-1]:,.0f}/s, append {rows['append'][-1]:,.0f}/s, raw COPY binary"
            f" {rows['raw_binary'][-1]:,.0f}/s, csv {rows['raw_csv'][-1]:,.0f}/s; import/raw"
            f" {rows['import'][-1] / raw:.2f}, append/raw {rows['append'][-1] / raw:.2f}"
            f" (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    raw = [max(b, c) for b, c in zip(rows["raw_binary"], rows["raw_csv"])]
    out = {f"{k}_eps": statistics.median(v) for k, v in rows.items()}
    out["import_over_raw_copy"] = statistics.median([i / r for i, r in zip(rows["import"], raw)])
    out["append_over_raw_copy"] = statistics.median([a / r for a, r in zip(rows["append"], raw)])
    store = open_store(url)
    out["events_stored"] = store.count_events()
    store.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("GLASSFEED_BENCH_PG_URL", DEFAULT_URL))
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--http-batches", type=int, default=11)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--no-sqlite", action="store_true", help="skip the SQLite HTTP baseline")
    a = ap.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    schema = f"gfbench_{uuid.uuid4().hex[:10]}"
    url = f"{a.url}{'&' if '?' in a.url else '?'}schema={schema}"
    tmp = Path(tempfile.mkdtemp(prefix="gf-bench-pg-"))
    out: dict = {"machine": machine()}
    with psycopg.connect(split_url(a.url)[0], autocommit=True) as con:
        out["server"] = con.execute("SHOW server_version").fetchone()[0]
    try:
        setup(url)  # type: ignore[arg-type]  # open_store takes the URL
        print(f"bulk: {a.events:,} events per load, {a.repeats} repeats (store {url})", flush=True)
        out.update(bench_bulk_vs_copy(url, tmp, a.events, a.repeats))
        print("http on PostgreSQL:", flush=True)
        out["http_eps_pg"] = statistics.median(bench_http(url, a.http_batches, a.batch))  # type: ignore[arg-type]
        if not a.no_sqlite:
            db = tmp / "bench.db"
            setup(db)
            print("http on SQLite (baseline, same run):", flush=True)
            out["http_eps_sqlite"] = statistics.median(bench_http(db, a.http_batches, a.batch))
            out["http_pg_over_sqlite"] = out["http_eps_pg"] / out["http_eps_sqlite"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with psycopg.connect(split_url(a.url)[0], autocommit=True) as con:
            con.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))
    out["load_at_end"] = os.getloadavg()[0]
    print(orjson.dumps(out).decode())
    return out


if __name__ == "__main__":
    main()
