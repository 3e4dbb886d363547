"""Moderation rules as simulator arms: exposure, engagement, satisfaction and error rates per arm, over seeds.

Run: ``python -m benchmarks.sim_moderation [--users 1000] [--steps 30] [--seeds 1,2,3] [--policy engagement]
[--moderation none,sim_downrank,sim_drop,sim_drop_aggressive] [--divisive-bias 0] [--harm-divisive 6]
[--out results.json]``, or ``--calibrate CLASSIFIERS_FOLDER`` for the stand-in's defaults. Each seed is one
``run_moderation_simulation`` (every arm on the same seeded society, ``docs/sim_moderation.md``); the table gives
the median over seeds and [min, max], then the machine. ``glassfeed simulate --moderation ...`` runs one seed and
writes the HTML report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine
from glassfeed.sim.loop import SimConfig
from glassfeed.sim.moderation import ClassifierParams, HarmParams, arms_for, run_moderation_simulation

ROWS: list[tuple[str, str]] = [
    ("toxic_share_consumed", "toxic share, scanned"),
    ("toxic_share_top10", "toxic share, top 10 served"),
    ("divisive_share_consumed", "divisive share, scanned"),
    ("divisive_share_top10", "divisive share, top 10 served"),
    ("engagement_rate", "engagement / impression"),
    ("click_rate", "clicks / impression"),
    ("satisfaction", "stated satisfaction"),
    ("regret", "regret"),
    ("time_spent_s", "time per session (s)"),
    ("toxic_prevalence", "toxic share of all posts"),
    ("actioned_share", "posts actioned (home)"),
    ("false_discovery", "actioned but not toxic (of actioned)"),
    ("false_positive_rate", "non-toxic posts actioned (FPR)"),
    ("recall", "toxic posts actioned (recall)"),
]


def _cell(vals: list[float | None], signed: bool = False) -> str:
    got = [v for v in vals if v is not None]
    if not got:
        return "–"
    if len(got) == 1:
        return f"{got[0]:+.4f}" if signed else f"{got[0]:.4f}"
    f = "+.4f" if signed else ".4f"
    return f"{statistics.median(got):{f}} [{min(got):{f}}, {max(got):{f}}]"


def calibrate(folder: Path, head: str = "offensive") -> dict[str, Any]:
    """The ``ClassifierParams`` defaults: per-class mean / sd of logit(score) of a trained head (``glassfeed moderation
    train-classifiers`` output in ``folder``) on TweetEval offensive test, with its TPR / FPR at a few thresholds."""
    import numpy as np

    from glassfeed.evaluate.datasets import dataset_path
    from glassfeed.moderation.classifiers import ClassifierSet, read_tweeteval

    texts, labels = read_tweeteval(dataset_path("tweeteval-offensive"), "test")
    y = labels == 1
    score = np.asarray(ClassifierSet.load(folder).score(list(texts))[head], np.float64)
    c = np.clip(score, 1e-6, 1 - 1e-6)
    logit = np.log(c / (1 - c))
    out: dict[str, Any] = {
        "posts": len(y),
        "positive": int(y.sum()),
        "mean_toxic": float(logit[y].mean()),
        "sd_toxic": float(logit[y].std()),
        "mean_clean": float(logit[~y].mean()),
        "sd_clean": float(logit[~y].std()),
    }
    for t in (0.34, 0.5, 0.8, 0.9):
        flag = score >= t
        out[f"at {t}"] = {"tpr": float(flag[y].mean()), "fpr": float(flag[~y].mean())}
    print(json.dumps(out, indent=1))
    print(f"machine: {machine()}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--policy", default="engagement", help="comma-separated feed policies")
    ap.add_argument("--moderation", default="none,sim_downrank,sim_drop,sim_drop_aggressive")
    ap.add_argument("--history-days", type=int, default=7)
    ap.add_argument("--retrain-every", type=int, default=10)
    ap.add_argument("--divisive-bias", type=float, default=0.0, help="ClassifierParams.divisive_bias")
    ap.add_argument("--harm-divisive", type=float, default=None, help="HarmParams.divisive (default: the default)")
    ap.add_argument("--out", type=Path, default=None, help="write every seed's final metrics here (JSON)")
    ap.add_argument("--calibrate", type=Path, default=None, help="a trained classifiers folder: print its moments")
    a = ap.parse_args(argv)
    if a.calibrate is not None:
        return calibrate(a.calibrate)
    seeds = [int(s) for s in a.seeds.split(",")]
    arms = arms_for([p for p in a.policy.split(",") if p], [m for m in a.moderation.split(",") if m])
    clf = ClassifierParams(divisive_bias=a.divisive_bias)
    harm = HarmParams() if a.harm_divisive is None else HarmParams(divisive=a.harm_divisive)
    finals: dict[int, dict[str, dict[str, Any]]] = {}
    secs: dict[int, float] = {}
    for seed in seeds:
        cfg = SimConfig(
            users=a.users,
            steps=a.steps,
            seed=seed,
            history_days=a.history_days,
            retrain_every=a.retrain_every,
            homog_panel=min(1000, a.users),
        )
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-simmod-") as tmp:
            r = run_moderation_simulation(cfg, arms, Path(tmp), harm=harm, classifier=clf)
        secs[seed] = time.perf_counter() - t
        finals[seed] = r.final
        print(f"seed {seed}: {secs[seed]:.0f} s", flush=True)
    names = [arm.name for arm in arms]
    print(
        f"\n{a.users} users x {a.steps} steps (6 h), {a.history_days} days of history, seeds {seeds}; "
        f"median over seeds [min, max]; {harm}, {clf}\n"
    )
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, label in ROWS:
        print(f"| {label} | " + " | ".join(_cell([finals[s][n].get(key) for s in seeds]) for n in names) + " |")
    base = next((n for n, arm in zip(names, arms) if arm.moderation == "none"), None)
    if base is not None and len(seeds) > 1:
        print("\npaired difference arm - " + base + " per seed (same society): median [min, max]\n")
        others = [n for n in names if n != base]
        print("| metric | " + " | ".join(others) + " |")
        print("|---|" + "---|" * len(others))
        for key, label in ROWS[:9]:
            diffs = {
                n: [
                    None
                    if finals[s][n].get(key) is None or finals[s][base].get(key) is None
                    else finals[s][n][key] - finals[s][base][key]
                    for s in seeds
                ]
                for n in others
            }
            print(f"| {label} | " + " | ".join(_cell(diffs[n], True) for n in others) + " |")
    print(f"\nmachine: {machine()}")
    out = {"args": vars(a) | {"out": str(a.out) if a.out else None}, "seconds": secs, "final": finals}
    if a.out:
        a.out.write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
