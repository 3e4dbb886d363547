"""The tables of docs/breadth.md from the runs' results.json files (one folder per seed).

    .venv/bin/python docs/breadth/summarise.py docs/breadth 1,2,3

reads ``docs/breadth/seed<N>/results.json`` and prints, per policy, each metric's mean ± sample standard deviation
(min-max) across the seeds, then issue 18's three ratios per seed with their mean ± sd and a 95% t-interval across
seeds (a seed is one society: history, models and people).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

METRICS = (
    ("engagement_rate", "engagement / impression"),
    ("divisive_share_top10", "divisive share, top 10 served"),
    ("topic_entropy", "topic entropy of pages"),
    ("topic_entropy_cumulative", "topic entropy, all scanned (per user)"),
    ("satisfaction", "stated satisfaction"),
    ("regretted_time_s", "regretted time per session (s)"),
    ("time_spent_s", "time per session (s)"),
    ("click_rate", "clicks / impression"),
)
RATIOS = (  # (metric, divided by this policy's, issue 18's target)
    ("engagement_rate", "engagement", ">= 0.95", "engagement / impression ÷ engagement's"),
    ("divisive_share_top10", "engagement", "<= 0.50", "divisive top-10 share ÷ engagement's"),
    ("topic_entropy", "chronological", ">= 0.80", "topic entropy of pages ÷ chronological's"),
)


def spread(xs: list[float]) -> str:
    a = np.asarray(xs, float)
    return f"{a.mean():.3f} ± {a.std(ddof=1):.3f} ({a.min():.3f}-{a.max():.3f})"


def main(root: Path, seeds: list[int]) -> None:
    runs = {s: json.loads((root / f"seed{s}" / "results.json").read_text()) for s in seeds}
    policies = runs[seeds[0]]["config"]["policies"]
    print("| metric | " + " | ".join(policies) + " |")
    print("|---" * (len(policies) + 1) + "|")
    for key, label in METRICS:
        print(f"| {label} | " + " | ".join(spread([runs[s]["final"][p][key] for s in seeds]) for p in policies) + " |")
    print()
    t = stats.t.ppf(0.975, len(seeds) - 1)
    print("| policy: ratio | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd | 95% t-interval | target |")
    print("|---" * (len(seeds) + 4) + "|")
    for p in policies:
        if p in ("engagement", "chronological"):
            continue
        for key, base, target, label in RATIOS:
            r = np.array([runs[s]["final"][p][key] / runs[s]["final"][base][key] for s in seeds])
            half = t * r.std(ddof=1) / np.sqrt(len(r))
            print(
                f"| {p}: {label} | "
                + " | ".join(f"{x:.3f}" for x in r)
                + f" | {r.mean():.3f} ± {r.std(ddof=1):.3f} | [{r.mean() - half:.3f}, {r.mean() + half:.3f}] | {target} |"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")])
