"""Serving cost of ads: a 50-item feed page with the ad lever placing ads, against the same page without, in one
process on one store (issue 15's must-show: within 1.15x).

Builds (or reuses, with --db) a trained synthetic store (``bench_feed.build_store``), adds ``--campaigns``
campaigns of ``--advertisers`` advertisers (a mix of untargeted, topic-, country- and age-targeted; CPM and CPC
bids; budgets that do not run out during the run; people get a declared country and birth year), then serves
blocks of the same requests alternately with ads on (the ``AdService`` installed as the feed's ``ad_server``) and
off (``ad_server`` None): A B, B A, ... so that a shared machine's drifts hit both alike. Both sides log their
impressions as in production (the feed's impressions, and on the ads side the ad log's, each group-committed by a
background writer), so the ads side pays for its writes too. Prints the machine, per side p50/p90/p99 of wall
time, ads per page, and the ratio of medians (ads / no ads): the median over blocks of each block's ratio, and
pooled; and the serving thread's CPU time per request (``time.thread_time``) with and without, whose ratio a busy
machine disturbs less than wall time's.

Usage: python -m benchmarks.bench_ads [--db PATH] [--users 2000 --days 14] [--blocks 20] [--requests 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_feed import build_store
from benchmarks.common import machine
from glassfeed.ads.campaigns import CampaignSpec, TargetingSpec
from glassfeed.ads.service import AdService
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store


def add_campaigns(svc: FeedService, ads: AdService, n: int, advertisers: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    st = svc.state
    now = svc.now()
    topics = [t for t in st.topics.names if ads.policy.sensitive_topic(t) is None] or ["news"]
    posts = list(range(1, st.posts.capacity))
    for u in range(1, st.users.n + 1):  # declared profiles: countries and birth years targeting can use
        uid = st.users.id_of(u)
        if uid is None:
            continue
        prefs = dict(st.feedback.prefs(u))
        prefs["profile"] = {
            "country": str(rng.choice(["DE", "FR", "IT", "ES", "NL"])),
            "birth_year": int(rng.integers(1950, 2006)),
        }
        svc.ingestor.set_prefs(uid, prefs)
    for i in range(n):
        kind = i % 4
        targeting = TargetingSpec(
            topics=[str(rng.choice(topics))] if kind == 1 else [],
            countries=["DE", "FR"] if kind == 2 else [],
            age_bands=["25-34", "35-44"] if kind == 3 else [],
        )
        creatives = [st.posts.id_of(int(p)) for p in rng.choice(posts, 3, replace=False)]
        spec = CampaignSpec(
            name=f"campaign {i}",
            on_behalf_of=f"brand {i % advertisers}",
            paid_by=f"advertiser {i % advertisers}",
            objective="clicks" if i % 3 == 0 else "reach",
            bid=float(rng.uniform(0.2, 1.0)) if i % 3 == 0 else float(rng.uniform(1.0, 8.0)),
            daily_budget=1e6,
            lifetime_budget=1e7,
            start=now - 86400,
            creatives=[c for c in creatives if c],
            targeting=targeting,
        )
        ads.put_campaign(f"adv{i % advertisers}", f"c{i}", spec)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, help="a trained store to reuse (default: build one)")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--campaigns", type=int, default=60)
    ap.add_argument("--advertisers", type=int, default=20)
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50, help="requests per block and side")
    a = ap.parse_args(argv)
    print(machine(), flush=True)
    db = a.db or build_store(Path(tempfile.mkdtemp(prefix="gf-ads-bench-")), a.users, a.days, 0)
    svc = FeedService(Ingestor(open_store(db)), clock="data")
    ads = AdService(svc)
    ads.policy = ads.policy.model_copy(update={"pacing": ads.policy.pacing.model_copy(update={"slack": 1.0})})
    if not ads.campaigns:
        add_campaigns(svc, ads, a.campaigns, a.advertisers, 0)
    st = svc.state
    active = [u for u in range(1, st.users.n + 1) if st.graph.following(u)]
    inner: list[float] = []

    def place(*args: Any) -> Any:  # the lever's own share of a page: AdService.place timed inside the feed
        t = time.perf_counter()
        out = ads.place(*args)
        inner.append((time.perf_counter() - t) * 1e3)
        return out

    cpu: dict[bool, list[float]] = {True: [], False: []}  # the serving thread's CPU time per request

    def serve(users: list[int], on: bool) -> tuple[list[float], int]:
        svc.ad_server = place if on else None
        lat, n_ads = [], 0
        for u in users:
            t, c = time.perf_counter(), time.thread_time()
            page = svc.feed(st.users.id_of(u), limit=50)
            lat.append((time.perf_counter() - t) * 1e3)
            cpu[on].append((time.thread_time() - c) * 1e3)
            n_ads += sum(1 for it in page["items"] if it.get("ad"))
        return lat, n_ads

    rng = np.random.default_rng(7)
    serve(rng.choice(active, 100).tolist(), True)  # warm-up, both paths
    serve(rng.choice(active, 100).tolist(), False)
    cpu[True].clear()
    cpu[False].clear()
    on_all: list[float] = []
    off_all: list[float] = []
    ratios, ads_shown = [], 0
    for b in range(a.blocks):
        users = rng.choice(active, a.requests).tolist()
        first = b % 2 == 0
        lat1, n1 = serve(users, first)
        lat2, n2 = serve(users, not first)
        on, off = (lat1, lat2) if first else (lat2, lat1)
        ads_shown += n1 + n2
        on_all += on
        off_all += off
        ratios.append(float(np.median(on) / np.median(off)))
    ads.close()
    svc.close()

    def pct(x: list[float]) -> str:
        return " ".join(f"p{q} {np.percentile(x, q):.2f} ms" for q in (50, 90, 99))

    out = {
        "ads_p50_ms": float(np.percentile(on_all, 50)),
        "ads_p99_ms": float(np.percentile(on_all, 99)),
        "no_ads_p50_ms": float(np.percentile(off_all, 50)),
        "no_ads_p99_ms": float(np.percentile(off_all, 99)),
        "ratio_median_of_blocks": float(np.median(ratios)),
        "ratio_pooled_p50": float(np.median(on_all) / np.median(off_all)),
        "ratio_pooled_p99": float(np.percentile(on_all, 99) / np.percentile(off_all, 99)),
        "ads_per_page": ads_shown / (a.blocks * a.requests),
        "place_p50_ms": float(np.median(inner)),
        "cpu_ratio_p50": float(np.median(cpu[True]) / np.median(cpu[False])),
    }
    print(f"store: {db} ({st.users.n} users, {len(ads.campaigns)} campaigns)")
    print(f"with ads:    {pct(on_all)}  ({out['ads_per_page']:.2f} ads per page)")
    print(f"without ads: {pct(off_all)}")
    print(f"AdService.place inside the page: p50 {out['place_p50_ms']:.2f} ms")
    print(
        f"serving thread CPU per request: with ads p50 {np.median(cpu[True]):.2f} ms, without "
        f"{np.median(cpu[False]):.2f} ms, ratio {out['cpu_ratio_p50']:.3f} (less sensitive to other processes)"
    )
    print(
        f"ratio (ads / no ads): median of {a.blocks} blocks' p50 ratios {out['ratio_median_of_blocks']:.3f}; "
        f"pooled p50 {out['ratio_pooled_p50']:.3f}, p99 {out['ratio_pooled_p99']:.3f}"
    )
    return out


if __name__ == "__main__":
    main()
