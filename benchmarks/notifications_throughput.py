"""Notification candidates and policy evaluation for one day of a synthetic society's events (issue 14's budget:
10,000 users' day in <= 10 s).

Run ``python -m benchmarks.notifications_throughput [--users 10000] [--repeats 3]``. It generates ``--users``
people browsing for 2 days (sim/generate.py, seed 1), takes the second day's events (ids shifted to start at 1, as
the store numbers them), and times, per policy: ``from_events`` (one candidate per notifying event, blocked/muted
senders dropped), ``mentions`` (the day's posts' texts), ``aggregate`` and ``schedule`` (every person with their
own time zone, spread over 24 zones). It prints the medians over ``--repeats`` runs with the counts and the
machine line. Generating the society is not timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks.common import machine
from glassfeed.notifications.candidates import NotificationCandidates, aggregate, from_events, mentions
from glassfeed.notifications.policy import KINDS, load_notification_policies
from glassfeed.notifications.schedule import DECISIONS, schedule
from glassfeed.sim.generate import generate_network

ZONES = [
    "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver", "America/Chicago",
    "America/New_York", "America/Sao_Paulo", "Atlantic/Azores", "UTC", "Europe/London", "Europe/Paris",
    "Europe/Athens", "Europe/Moscow", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata", "Asia/Dhaka", "Asia/Bangkok",
    "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane", "Australia/Sydney", "Pacific/Noumea", "Pacific/Auckland",
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    net = generate_network(args.users, 2, 1)
    gen_s = time.perf_counter() - t
    ev = net.events
    day2 = ev.take(np.flatnonzero(ev.ts >= net.start_ts + 86400.0))
    day2.user = day2.user + 1  # the store's idx start at 1
    day2.post = np.where(day2.post >= 0, day2.post + 1, -1)
    day2.target_user = np.where(day2.target_user >= 0, day2.target_user + 1, -1)
    day2 = day2.with_seq(1)
    authors = np.concatenate([[0], net.post_author + 1])
    new_posts = np.flatnonzero(net.post_created >= net.start_ts + 86400.0)
    handles = {f"u{u}": u + 1 for u in range(net.n_users)}
    texts = [net.post_text[p] for p in new_posts.tolist()]
    zone_of = {u: ZONES[u % len(ZONES)] for u in range(1, net.n_users + 1)}
    policies = load_notification_policies()
    print(f"{machine()}")
    print(f"{args.users:,} users; day 2: {len(day2):,} events, {len(new_posts):,} posts (generated in {gen_s:.1f} s)")
    for name, pol in policies.items():
        person = {u: pol.for_person({"time_zone": z}) for u, z in zone_of.items()}
        times: list[float] = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            c = from_events(day2, lambda p: authors[p], hidden=lambda u: set())
            m = mentions(new_posts + 1, texts, authors[new_posts + 1], net.post_created[new_posts], handles)
            n = aggregate(NotificationCandidates.concat([c, m]), pol.aggregate_window_h)
            prior = np.array([pol.kinds[k].prior_open for k in KINDS])[n.kind]
            s = schedule(n, person, prior)
            times.append(time.perf_counter() - t)
        pushed = int((s.decision == 0).sum())
        print(
            f"{name:16s} median {statistics.median(times):6.2f} s over {args.repeats} runs "
            f"(min {min(times):.2f}, max {max(times):.2f}): {len(c) + len(m):,} candidates -> {len(n):,} "
            f"notifications, {pushed:,} {DECISIONS[0]}ed to {len(set(n.user[s.decision == 0].tolist())):,} people"
        )


if __name__ == "__main__":
    main()
