"""The full feed pipeline vs retrieval models on the offline protocols' own splits.

For each protocol: import the training split as glassfeed events, train the feed (``train_all``), rank a top-10
for every test user with ``pipeline.rank`` (engagement preset, offline changes only: see
``pipeline_eval.eval_policy``), and score it with the protocol's metrics beside tuned retrieval baselines.
Every import recipe of ``evaluate/imports.toml`` is run (``protocol``, the default: the protocol's own shape;
``faithful``: the data as a platform would log it; ``aligned``), each row named by its recipe.
Usage: python -m benchmarks.bench_pipeline_eval [--protocols ms-ml100k,lastfm-social] [--max-users N]
Writes bench-results/pipeline-<protocol>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

from benchmarks.common import machine  # noqa: E402
from glassfeed.evaluate.pipeline_eval import evaluate_pipeline, to_markdown  # noqa: E402
from glassfeed.evaluate.protocols import PROTOCOLS  # noqa: E402
from glassfeed.settings import load_settings  # noqa: E402

VARIANTS = ("protocol", "faithful", "aligned")  # import recipes (evaluate/imports.toml)
BASELINES = {"ms-ml100k": ("pop", "ease"), "recbole-ml1m": ("pop", "ease"), "lastfm-social": ("pop", "social", "ease")}
BASELINES.update({p: ("pop", "social", "trustwalk", "ease") for p in PROTOCOLS if p.startswith("social-")})


def run(protocol: str, max_users: int | None, policy: str = "engagement") -> dict:
    """Every import recipe on one protocol; the baselines are measured once, with the first."""
    out: dict = {"protocol": protocol, "variants": {}}
    for i, name in enumerate(VARIANTS):
        t0 = time.perf_counter()
        res = evaluate_pipeline(
            protocol=protocol,
            policy=policy,
            max_users=max_users,
            baselines=BASELINES[protocol] if i == 0 else (),
            settings=load_settings(),  # the edge: GLASSFEED_DATA, a glassfeed.toml, ...
            recipe=name,
        )
        res["wall_seconds"] = time.perf_counter() - t0
        res["results"][0]["model"] = f"pipeline ({policy}, {name})"
        out["variants"][name] = res
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", default="ms-ml100k,lastfm-social")
    ap.add_argument("--max-users", type=int, default=None, help="only the first N users (quick run)")
    ap.add_argument("--policy", default="engagement")
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    args = ap.parse_args(argv)
    print(machine())
    args.out.mkdir(parents=True, exist_ok=True)
    for protocol in [p.strip() for p in args.protocols.split(",") if p.strip()]:
        t0 = time.perf_counter()
        res = run(protocol, args.max_users, args.policy)
        runs = [res["variants"][name] for name in VARIANTS]
        first = dict(runs[0], results=[r["results"][0] for r in runs] + runs[0]["results"][1:])
        md = to_markdown(first)
        md += "\n" + "\n".join(
            f"- {name}: import {v['seconds']['import']:.1f} s, train {v['seconds']['train']:.1f} s, rank "
            f"{v['results'][0]['rank_seconds']:.1f} s, {v['events']} events, wall {v['wall_seconds']:.0f} s; "
            f"top-10 by source {', '.join(f'{k} {n}' for k, n in v['sources_in_topk'].items() if n)}; "
            f"train items in top-10 {v['train_items_in_topk']}"
            for name, v in res["variants"].items()
        )
        md += f"\n\nTotal {time.perf_counter() - t0:.0f} s on {machine()}\n"
        print(md)
        (args.out / f"pipeline-{protocol}.md").write_text(md)
        (args.out / f"pipeline-{protocol}.json").write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
