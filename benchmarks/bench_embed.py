"""Content embedding: throughput (posts/s), model size on disk and in memory, quality, and the content source's
per-request search cost (issue 13 item 3; docs/content.md).

For each ``--dims`` (the model's trained truncations) on real post texts (Reddit titles of 44 subreddits from the
shared data folder, read in place):

- throughput: ``StaticEmbedder.embed`` over ``--n`` titles in one call (as the serving state embeds a batch of new
  posts at ingest), ``--runs`` times; the median posts/s and ms per post;
- sizes: the model's files on disk (token table + tokenizer) and its token table in memory; the serving state's
  bytes per embedded post (int8 codes + a float32 scale);
- quality: subreddit accuracy of the nearest centroid (centroids from the even-numbered titles, tested on the odd),
  the mechanism of topic inference, so "quality per millisecond" compares like with like;
- search: one person's query (the mean of 5 titles' embeddings) against ``--pool`` posts, exact, as the content
  source answers a request: p50/p99 ms over ``--queries`` queries (``OPENBLAS_NUM_THREADS=1``, as a worker).

With ``--db`` (a trained store, e.g. the 10k network of ``benchmarks.bench_feed``): the content source's cost in
the feed, as ``pipeline.rank`` for ``--requests`` random people, with the engagement policy and the same policy
without its content source, alternating request by request in one process (same state, same load): p50/p99 of
each and their ratios, and the content source alone.

Usage: OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_embed [--n 20000] [--runs 5] [--dims 64 128 256]
       OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_embed --db var/feed-bench.db [--requests 300]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from glassfeed.content.embedder import StaticEmbedder, _load
from glassfeed.feed.pipeline import rank
from glassfeed.feed.service import FeedService
from glassfeed.feed.sources import SOURCE_FUNCS
from glassfeed.ingest import Ingestor
from glassfeed.retrieval.ann import ANNIndex
from glassfeed.settings import load_settings
from glassfeed.store import open_store


def reddit_titles(data: Path) -> tuple[list[str], np.ndarray]:
    csv.field_size_limit(1 << 30)
    titles: list[str] = []
    labels: list[int] = []
    for i, f in enumerate(sorted((data / "reddit-top-2.5m-sample" / "data").glob("*.csv"))):
        with f.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                titles.append(row["title"])
                labels.append(i)
    return titles, np.array(labels)


def centroid_accuracy(emb: np.ndarray, labels: np.ndarray) -> float:
    train = np.arange(len(emb)) % 2 == 0
    cent = np.stack([emb[train & (labels == c)].mean(axis=0) for c in range(int(labels.max()) + 1)])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    return float((np.argmax(emb[~train] @ cent.T, axis=1) == labels[~train]).mean())


def feed_cost(db: str, requests: int) -> None:
    """``rank`` with and without the content source, alternating per request (see the module doc)."""
    t = time.perf_counter()
    svc = FeedService(Ingestor(open_store(db)), load_settings(environ={}), clock="data")
    st, now = svc.state, svc.now()
    embedded = int(st.content.has(np.arange(1, st.n_posts + 1)).sum())
    print(f"state built in {time.perf_counter() - t:.1f} s; {embedded} of {st.n_posts} posts embedded")
    pol = svc.policies["engagement"]
    without = dataclasses.replace(pol, sources={k: v for k, v in pol.sources.items() if k != "content"})
    cutoff = now - pol.filters.max_age_hours * 3600.0
    recent = st.posts.created_between(cutoff, now)
    users = np.random.default_rng(1).choice(np.arange(1, st.n_users + 1), requests + 20, replace=False)
    for u in users[:20]:  # warm-up: indexes
        rank(st, svc.models, np.array([u]), pol, now, 50)
    lat: dict[str, list[float]] = {"without content": [], "with content": [], "content source alone": []}
    for i, u in enumerate(users[20:].tolist()):
        for name, p in (("with content", pol), ("without content", without))[:: 1 if i % 2 else -1]:
            t = time.perf_counter()
            rank(st, svc.models, np.array([u]), p, now, 50)
            lat[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        SOURCE_FUNCS["content"](
            st, np.array([u]), now, pol.sources["content"], cutoff, recent=recent, content_index=svc.models.content
        )
        lat["content source alone"].append(time.perf_counter() - t)
    base = lat["without content"]
    for name, v in lat.items():
        r50, r99 = np.median(v) / np.median(base), np.percentile(v, 99) / np.percentile(base, 99)
        ratio = f" (ratio p50 {r50:.3f}, p99 {r99:.3f})"
        print(
            f"{name}: p50 {1e3 * np.median(v):.2f} ms p99 {1e3 * np.percentile(v, 99):.2f} ms"
            + ("" if name.startswith("content") else ratio)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="titles per throughput run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument(
        "--pool", type=int, default=5000, help="posts searched per query ([state.content] search_max_posts)"
    )
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--db", help="a trained store: measure the content source's cost in the feed instead")
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    if args.db:
        print(f"machine: {machine()}")
        feed_cost(args.db, args.requests)
        print(f"load after: {machine().rsplit('load ', 1)[1]}")
        return
    data = load_settings().data_dir
    if not (data / "reddit-top-2.5m-sample").exists():
        sys.exit(f"skipped: {data / 'reddit-top-2.5m-sample'} not found")
    titles, labels = reddit_titles(data)
    print(f"machine: {machine()}")
    chars = np.mean([len(t) for t in titles])
    print(f"texts: {len(titles)} Reddit titles, {labels.max() + 1} subreddits, mean {chars:.0f} chars")
    rng = np.random.default_rng(0)
    for dims in args.dims:
        _load.cache_clear()
        t = time.perf_counter()
        emb = StaticEmbedder(dims=dims).load()
        load_s = time.perf_counter() - t
        batch = titles[: args.n]
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            emb.embed(batch)
            times.append(time.perf_counter() - t)
        med = float(np.median(times))
        vec = emb.embed(titles)
        acc = centroid_accuracy(vec, labels)
        pool = vec[rng.choice(len(vec), min(args.pool, len(vec)), replace=False)]
        index = ANNIndex(dims, exact_below=len(pool) + 1).fit(pool)
        lat = []
        for _ in range(args.queries):
            q = vec[rng.choice(len(vec), 5)].mean(axis=0, keepdims=True)
            t = time.perf_counter()
            index.query(q / np.linalg.norm(q), 100)
            lat.append(time.perf_counter() - t)
        print(
            f"dims {dims}: {args.n / med:,.0f} posts/s (median of {args.runs}; {1e3 * med / args.n:.3f} ms/post), "
            f"load {load_s:.2f} s, disk {emb.files_bytes() / 2**20:.1f} MiB, memory {emb.nbytes / 2**20:.1f} MiB, "
            f"state {dims + 4} B/post, centroid accuracy {acc:.3f}, search of {len(pool)} posts "
            f"p50 {1e3 * np.median(lat):.2f} ms p99 {1e3 * np.percentile(lat, 99):.2f} ms"
        )
    print(f"load after: {machine().rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
