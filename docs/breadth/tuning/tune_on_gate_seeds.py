"""Tuning runs for the breadth policy on gate-sized societies (docs/breadth.md, "Tuning on seeds 110-129").

Variants of the shipped ``breadth.toml`` (prior strength, pool, λ) run with engagement ranking and the chronological
feed on the gate's societies (the packaged gate's simulation settings) and are judged by the gate's own guardrails.
Run from the repository root:

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python docs/breadth/tuning/tune_on_gate_seeds.py \
        --first-seed 110 --seeds 20 --workers 2 --out docs/breadth/tuning/seeds110-129.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

SHIPPED = Path("src/glassfeed/policies/breadth.toml")
#: name -> (prior_strength, pool, calibration); every other key as shipped (max_divisiveness 0.5, order "score")
VARIANTS = {
    "br_p15_pool100": (15.0, 100, 0.9),
    "br_p10_pool100": (10.0, 100, 0.9),
    "br_p15_pool80": (15.0, 80, 0.9),
    "br_p10_pool80": (10.0, 80, 0.9),
    "br_p15_pool100_l08": (15.0, 100, 0.8),
}


def write_variants(folder: Path) -> None:
    base = SHIPPED.read_text()
    for name, (prior, pool, lam) in VARIANTS.items():
        s = base.replace('name = "breadth"', f'name = "{name}"', 1)
        s = re.sub(r"^prior_strength = [0-9.]+", f"prior_strength = {prior}", s, flags=re.M)
        s = re.sub(r"^pool = [0-9]+", f"pool = {pool}", s, flags=re.M)
        s = re.sub(r"^calibration = [0-9.]+", f"calibration = {lam}", s, flags=re.M)
        (folder / f"{name}.toml").write_text(s)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--first-seed", type=int, default=110)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="breadth-variants-"))
    write_variants(folder)
    os.environ["GLASSFEED_SERVING__POLICIES_DIR"] = str(folder)
    from glassfeed.cli_support import build_settings
    from glassfeed.sim.gate import evaluate, load_gate, machine, replicates, run_replicates

    settings = build_settings(None)
    spec = load_gate("default")
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    jobs = replicates(spec.simulation, [*VARIANTS, "engagement", "chronological"], settings, seeds)
    t = time.perf_counter()
    res = run_replicates(jobs, a.workers, None, lambda r: print(f"seed {r.seed}: {r.seconds:.0f} s", flush=True))
    wall = time.perf_counter() - t
    out = {}
    for v in VARIANTS:
        g = evaluate(spec, v, "engagement", res)
        out[v] = {
            gr.guardrail.metric: {
                "ratio_mean": gr.ratio.mean,
                "low": gr.ratio.low,
                "high": gr.ratio.high,
                "within_seeds": gr.within,
                "verdict": gr.verdict,
            }
            for gr in g.guardrails
        }
        print(
            v, {m: f"{r['ratio_mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}] {r['verdict']}" for m, r in out[v].items()}
        )
    a.out.write_text(
        json.dumps(
            {
                "seeds": seeds,
                "variants": {k: dict(zip(("prior_strength", "pool", "calibration"), v)) for k, v in VARIANTS.items()},
                "results": out,
                "per_seed": [{"seed": r.seed, "values": r.values} for r in res],
                "wall_s": wall,
                "machine": machine(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
