"""Exploration's cost in engagement and its effect on new authors' reach, in the simulator.

One seeded society (``sim/loop.py``: the same history, models, active users and posting stream start) browses
feeds ranked by the engagement preset with ``[mixing] explore_share`` = each of ``--shares`` (0 = the preset as
shipped), side by side. Per world: engagements (likes, reposts, replies) per feed session and per impression, and,
for the posts made during the run, the impressions a post gets and the share never seen at all, for posts by new
authors (fewer than ``--new-author-posts`` posts in the history) and by the others; plus the creator Gini.

Run: ``python -m benchmarks.bench_explore [--users 1500] [--steps 16] [--shares 0,0.05,0.1] [--max-impressions 2,20]
[--json out.json]`` (each non-zero share with each ``explore_max_impressions``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine
from glassfeed.audit import metrics as M
from glassfeed.settings import packaged_settings
from glassfeed.sim.loop import SimConfig, World, copy_base, prepare_base


def _policy_name(base: str, share: float, max_impressions: float | None) -> str:
    if share == 0:
        return base
    return f"{base}_explore{round(100 * share)}" + ("" if max_impressions is None else f"_max{max_impressions:g}")


def write_policies(folder: Path, base: str, variants: list[tuple[float, float | None]]) -> list[str]:
    """The ``base`` preset with ``explore_share`` and ``explore_max_impressions`` (None: the preset's) set, one file
    per variant with a non-zero share; returns the policy names (``base`` for share 0)."""
    text = resources.files("glassfeed").joinpath(f"policies/{base}.toml").read_text("utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for share, max_imp in variants:
        name = _policy_name(base, share, max_imp)
        names.append(name)
        if share == 0:
            continue
        t = text.replace(f'name = "{base}"', f'name = "{name}"', 1)
        t = t.replace("explore_share = 0.0", f"explore_share = {share}", 1)
        assert f"explore_share = {share}" in t, "the preset's explore_share line was not found"
        if max_imp is not None:
            line = f"explore_max_impressions = {max_imp}"
            t = re.sub(r"^explore_max_impressions = [0-9.]+", line, t, count=1, flags=re.M)
        (folder / f"{name}.toml").write_text(t)
    return names


def world_metrics(w: World, hist_posts: np.ndarray, n_hist: int, new_below: int) -> dict[str, Any]:
    m = w.metrics
    imp = m.post_impressions
    posts = w.posts
    made = np.arange(n_hist, posts.n)
    made = made[posts.reply_to[made] < 0]  # original posts made during the run
    seen = np.zeros(posts.n, np.int64)
    seen[: len(imp)] = imp[: posts.n]
    new_author = hist_posts[posts.author[made]] < new_below
    out: dict[str, Any] = {
        "feed_requests": w.n_requests,
        "explored_share_of_served": w.n_explored / max(w.n_served, 1),
        "engagements_per_session": m.engagements / max(w.n_requests, 1),
        "engagements_per_impression": m.engagements / max(int(seen.sum()), 1),
        "impressions_per_session": int(seen.sum()) / max(w.n_requests, 1),
        "creator_gini_cumulative": float(M.gini(m.author_impressions)),
    }
    for name, sel in (("new_authors", made[new_author]), ("other_authors", made[~new_author])):
        out[name] = {
            "posts": len(sel),
            "impressions_per_post": float(seen[sel].mean()) if len(sel) else float("nan"),
            "never_seen_share": float((seen[sel] == 0).mean()) if len(sel) else float("nan"),
            "authors_reached": len(np.unique(posts.author[sel][seen[sel] > 0])),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=16, help="6-hour steps")
    ap.add_argument("--history-days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policy", default="engagement", help="the preset exploration is added to")
    ap.add_argument("--shares", default="0,0.05,0.1")
    ap.add_argument("--new-author-posts", type=int, default=3, help="authors with fewer history posts are new")
    ap.add_argument(
        "--max-impressions", default="", help="explore_max_impressions values, comma-separated (default: the preset's)"
    )
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    shares = [float(x) for x in a.shares.split(",")]
    maxes: list[float | None] = [float(x) for x in a.max_impressions.split(",") if x] or [None]
    variants = [(0.0, None)] if 0.0 in shares else []
    variants += [(s, m) for s in shares if s > 0 for m in maxes]
    print("command:", "python -m benchmarks.bench_explore " + " ".join(sys.argv[1:] if argv is None else argv))
    print("machine:", machine())
    names = [_policy_name(a.policy, s, m) for s, m in variants]
    cfg = SimConfig(
        users=a.users,
        steps=a.steps,
        seed=a.seed,
        policies=tuple(names),
        history_days=a.history_days,
        homog_every=0,
        homog_panel=min(1000, a.users),
    )
    out: dict[str, Any] = {
        "config": cfg.to_dict(),
        "shares": {n: s for n, (s, _) in zip(names, variants)},
        "max_impressions": {n: m for n, (_, m) in zip(names, variants)},
        "worlds": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
        folder = Path(tmp)
        write_policies(folder / "policies", a.policy, variants)
        settings = packaged_settings().replace(serving={"policies_dir": str(folder / "policies")})
        t = time.perf_counter()
        base = prepare_base(cfg, folder, settings=settings)
        out["setup_s"] = round(time.perf_counter() - t, 1)
        hist_posts = np.bincount(base.net.post_author, minlength=base.net.n_users)
        out["new_authors"] = int((hist_posts < a.new_author_posts).sum())
        for name in names:
            t = time.perf_counter()
            w = World(cfg, name, copy_base(base, folder / f"{name}.db"), base, settings)
            for k in range(cfg.steps):
                w.step(k)
            w.svc.close()  # stop its store tailer before the store closes
            w.close()
            res = world_metrics(w, hist_posts, base.net.n_posts, a.new_author_posts)
            res["seconds"] = round(time.perf_counter() - t, 1)
            out["worlds"][name] = res
    out["machine_end"] = machine()
    print(
        f"{a.users} users, {a.history_days} days of history, {a.steps} steps of 6 h, seed {a.seed}; "
        f"{out['new_authors']} new authors (< {a.new_author_posts} posts in the history)"
    )
    hdr = (
        f"{'policy':30} {'share':>5} {'explored':>8} {'eng/session':>11} {'eng/imp':>8} {'imp/session':>11} "
        f"{'gini':>6} {'new: imp/post':>13} {'never seen':>10} {'others: imp/post':>16} {'never seen':>10}"
    )
    print(hdr)
    for name, r in out["worlds"].items():
        na, oa = r["new_authors"], r["other_authors"]
        print(
            f"{name:30} {out['shares'][name]:5.2f} {r['explored_share_of_served']:8.3f} "
            f"{r['engagements_per_session']:11.3f} "
            f"{r['engagements_per_impression']:8.4f} {r['impressions_per_session']:11.2f} "
            f"{r['creator_gini_cumulative']:6.3f} {na['impressions_per_post']:13.2f} {na['never_seen_share']:10.3f} "
            f"{oa['impressions_per_post']:16.2f} {oa['never_seen_share']:10.3f}"
        )
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
