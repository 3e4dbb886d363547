"""Position debiasing in the simulator: the heads' error in each (user, post)'s position-free appeal, trained with
and without the logged slot as a feature.

A synthetic network is generated with the cascade's position effect in its logs (``BehaviourParams.position_effect``:
a scanned item at slot k is read with probability ``attention ** k``) and written through the Ingestor; its last
day is held out. The heads are trained twice on the same earlier days (``build_examples(position=...)`` +
``train_heads``): with the logged slot as a feature (serving asks at slot 0) and without (NaN: raw logs). A third,
reference model is trained, without the feature, on the same society generated with the position effect off: what
heads learn when there is no position effect to remove. On each held-out day's impressions (posts made before the
cut; features from the state at the cut, at each impression's time, as training's replay computes them) each
model's like / click probability at slot 0 is compared with the behaviour model's true probability once the slot
is read, for a rested user (``sim/position_bias.py``): mean absolute error, level (log of mean predicted over mean
true), mean log ratio, rank correlation, overall and by the slot the impression was logged at. The heads' labels
are per (user, post) pair (an impression is positive when the pair was ever engaged with), so pairs shown more than
once raise the level the heads learn above the per-impression truth; the share of such held-out impressions is
printed, and the reference model shows that level without any position effect.

Run: ``python -m benchmarks.bench_position [--users 1500] [--days 10] [--seed 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine
from glassfeed.domain import EventKind
from glassfeed.feed.features import pair_context, pair_features
from glassfeed.feed.policy import HEADS
from glassfeed.feed.train import build_examples, train_heads
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings
from glassfeed.sim.behaviour import BehaviourParams
from glassfeed.sim.generate import DAY, GeneratorParams, generate_network
from glassfeed.sim.position_bias import appeal_error, following_at, slot_rates, true_appeal
from glassfeed.state import ServingState
from glassfeed.store import Store, open_store

MEASURED = ("like", "click")


@dataclass
class HeldOut:
    """One generated history written to a store (all but its last day), and its held-out day's impressions."""

    store: Store
    X: np.ndarray  # features as serving computes them (slot 0)
    truth: dict[str, np.ndarray]
    slot: np.ndarray  # the slot each held-out impression was logged at
    info: dict[str, Any]


def held_out(users: int, days: int, seed: int, effect: bool, holdout: int, folder: Path) -> HeldOut:
    settings = packaged_settings()
    t0 = time.perf_counter()
    gp = GeneratorParams(behaviour=BehaviourParams(position_effect=effect))
    net = generate_network(users, days, seed, gp)
    cut = float(net.start_ts + (days - 1) * DAY)
    end = float(net.start_ts + days * DAY)
    ev = net.events
    store = open_store(folder / f"pos-{int(effect)}.db", synchronous="OFF")
    train_net = dataclasses.replace(net, events=ev.take(ev.ts < cut))
    write_network(train_net, Ingestor(store, settings.ingest, clock=lambda: end), with_tokens=False)
    # held-out: the last day's impressions of posts made before the cut
    imp = (ev.kind == int(EventKind.IMPRESSION)) & (ev.ts >= cut) & (ev.post >= 0)
    imp &= net.post_created[np.maximum(ev.post, 0)] < cut
    idx = np.flatnonzero(imp)
    if len(idx) > holdout:
        idx = np.sort(np.random.default_rng(seed).choice(idx, holdout, replace=False))
    hu, hp = ev.user[idx].astype(np.int64), ev.post[idx].astype(np.int64)
    truth = true_appeal(net, hu, hp, following_at(net, cut), gp.behaviour)
    uids, pids = store.user_ids(), store.post_ids()
    su = np.array([uids[f"u{i}"] for i in hu.tolist()], np.int64)
    sp = np.array([pids[f"p{i}"] for i in hp.tolist()], np.int64)
    state = ServingState.from_store(store, settings.state, clock=lambda: cut)
    batch_users, row = np.unique(su, return_inverse=True)
    # as training's replay does: the state before the window, each pair at its own time; serving's slot 0
    X = pair_features(state, pair_context(state, batch_users, row, sp), ev.ts[idx])
    all_imp = ev.kind == int(EventKind.IMPRESSION)
    pair = ev.user[all_imp].astype(np.int64) * net.n_posts + ev.post[all_imp]
    keys, counts = np.unique(pair, return_counts=True)
    repeated = counts[np.searchsorted(keys, hu * net.n_posts + hp)] > 1
    info = {
        "position_effect_in_logs": effect,
        "held_out_impressions": len(idx),
        "held_out_pairs_shown_more_than_once": float(repeated.mean()),
        "log_like_per_impression_by_slot": [round(float(x), 4) for x in slot_rates(net, EventKind.LIKE, cut, 20)],
        "log_click_per_impression_by_slot": [round(float(x), 4) for x in slot_rates(net, EventKind.CLICK, cut, 20)],
        "true_mean": {h: float(truth[h].mean()) for h in MEASURED},
        "setup_s": round(time.perf_counter() - t0, 1),
    }
    return HeldOut(store, X, truth, ev.position[idx], info)


#: (name, position effect in the logs, position as a feature)
VARIANTS = (
    ("raw logs (no position)", True, False),
    ("position feature, asked at slot 0", True, True),
    ("reference: logs without position effect", False, False),
)


def run(users: int, days: int, seed: int, max_rows: int, holdout: int, folder: Path) -> dict[str, Any]:
    settings = packaged_settings()
    worlds = {effect: held_out(users, days, seed, effect, holdout, folder) for effect in (True, False)}
    out: dict[str, Any] = {
        "users": users,
        "days": days,
        "seed": seed,
        "logs": {str(e): w.info for e, w in worlds.items()},
        "models": {},
    }
    for name, effect, position in VARIANTS:
        w = worlds[effect]
        t = time.perf_counter()
        ex = build_examples(w.store, settings.state, max_rows=max_rows, seed=seed, position=position)
        heads, _, _, _ = train_heads(ex.X, ex.Y, ex.ts)
        pred = heads.predict(w.X)
        res: dict[str, Any] = {"train_rows": len(ex), "train_s": round(time.perf_counter() - t, 1)}
        for h in MEASURED:
            p = pred[:, HEADS.index(h)]
            res[h] = appeal_error(p, w.truth[h], w.slot).to_dict()
            res[h]["pred_mean"] = float(p.mean())
            res[h]["true_mean"] = float(w.truth[h].mean())
        out["models"][name] = res
    for w in worlds.values():
        w.store.close()
    return out


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:+.3f}" if abs(x) < 100 else f"{x:.0f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-rows", type=int, default=200_000, help="training impressions (sampled)")
    ap.add_argument("--holdout", type=int, default=20_000, help="held-out impressions scored")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    print("command:", "python -m benchmarks.bench_position " + " ".join(sys.argv[1:] if argv is None else argv))
    print("machine:", machine())
    with tempfile.TemporaryDirectory(prefix="bench-pos-") as tmp:
        out = run(a.users, a.days, a.seed, a.max_rows, a.holdout, Path(tmp))
    out["machine_end"] = machine()
    lg = out["logs"]["True"]
    n_held = lg["held_out_impressions"]
    print(f"{a.users} users x {a.days} days, seed {a.seed}; the last day held out ({n_held} impressions)")
    print("likes per logged impression by slot 0..19 (position effect on):", lg["log_like_per_impression_by_slot"])
    off = out["logs"]["False"]["log_like_per_impression_by_slot"]
    print("likes per logged impression by slot 0..19 (position effect off):", off)
    print(
        "held-out impressions whose (user, post) pair was shown more than once:",
        {k: round(v["held_out_pairs_shown_more_than_once"], 3) for k, v in out["logs"].items()},
    )
    for h in MEASURED:
        print(f"\n{h}")
        print(
            f"{'model':42} {'pred':>7} {'true':>7} {'MAE':>7} {'level':>7} {'log ratio':>9} {'spearman':>8}  "
            "level by logged slot"
        )
        for name, res in out["models"].items():
            e = res[h]
            slots = " ".join(f"{k}:{_fmt(v['level'])}" for k, v in e["by_slot"].items())
            print(
                f"{name:42} {e['pred_mean']:7.4f} {e['true_mean']:7.4f} {e['mae']:7.4f} {_fmt(e['level']):>7} "
                f"{_fmt(e['log_ratio']):>9} {_fmt(e['spearman']):>8}  {slots}"
            )
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
