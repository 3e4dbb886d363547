"""Offline evaluation benchmark: every protocol with its default models, timed, beside published numbers.

Run ``python -m benchmarks.bench_evaluate`` from the repository root. It tunes each model on validation data,
scores the test split, prints the tables and the machine, and writes ``bench-results/evaluation.md`` and
``bench-results/evaluation.json``. Protocols whose dataset is absent are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

# One BLAS / OpenMP thread unless the caller says otherwise, set before numpy is imported: on the shared 2-core
# machine a 2-thread pool made EASE's inverse slower and its timings erratic (see docs/evaluation.md).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402

from glassfeed.evaluate.cli import run_with_progress  # noqa: E402
from glassfeed.evaluate.datasets import available  # noqa: E402
from glassfeed.evaluate.protocols import PROTOCOLS, build_recbole_ml1m  # noqa: E402
from glassfeed.evaluate.report import machine_info, to_markdown, write_report  # noqa: E402
from glassfeed.evaluate.tuning import evaluate_model  # noqa: E402
from glassfeed.retrieval import ALS, EASE, ANNIndex  # noqa: E402
from glassfeed.settings import load_settings  # noqa: E402


def recbole_checks(root: Path) -> dict[str, Any]:
    """Two side checks on the recbole-ml1m split: RecBole's own EASE setting (lambda 1000, no tuning), and the
    recall of the HNSW index against exact inner-product top-10 over every user's ALS factors."""
    split = build_recbole_ml1m(root)
    ease = EASE(lam=1000.0).fit(split.train)
    out: dict[str, Any] = {
        "ease_lam1000": evaluate_model(ease, split.train, split.test, 10, split.exclude, split.filter_items)
    }
    als = ALS(factors=64, regularization=0.1, alpha=5.0).fit(split.train)
    exact = np.argsort(-(als.user_factors_ @ als.item_factors_.T), axis=1, kind="stable")[:, :10]
    for ef in (50, 100):
        t0 = time.perf_counter()
        index = ANNIndex(dim=als.item_factors_.shape[1], M=16, ef=ef).fit(als.item_factors_)
        build = time.perf_counter() - t0
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            ids, _ = index.query(als.user_factors_, 10)
            runs.append(time.perf_counter() - t0)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)]))
        out[f"ann_ef{ef}"] = {
            "recall@10_vs_exact": recall,
            "build_seconds": build,
            "queries": len(ids),
            "query_seconds_median": statistics.median(runs),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--protocols",
        default=",".join(p for p in PROTOCOLS if not p.startswith("social-")),  # social-*: ~1 h, run on request
        help="comma-separated protocol names (default: all but the social-* ones)",
    )
    parser.add_argument("--out", default="bench-results", help="output folder (gitignored)")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per final model (median reported)")
    args = parser.parse_args(argv)
    console = Console()
    machine = machine_info()
    console.print(
        f"machine: {machine['cpu']}; {machine['usable_cores']} usable of {machine['cores']} cores; "
        f"{machine['platform']}; Python {machine['python']}; threads {machine['threads']}",
        markup=False,
        highlight=False,
    )
    root = load_settings().data_dir  # the edge: GLASSFEED_DATA or a glassfeed.toml may move the datasets
    runs, t0 = [], time.perf_counter()
    for name in [p.strip() for p in args.protocols.split(",") if p.strip()]:
        protocol = PROTOCOLS[name]
        if not available(protocol.dataset, root):
            console.print(f"skipped {name}: dataset {protocol.dataset!r} not found under the data directory")
            continue
        runs.append(run_with_progress(protocol, list(protocol.models), console, root=root, repeats=args.repeats))
    checks = recbole_checks(root) if any(r["protocol"] == "recbole-ml1m" for r in runs) else {}
    total = time.perf_counter() - t0
    for run in runs:
        print(to_markdown(run))
    if checks:
        print("recbole-ml1m side checks:", json.dumps(checks, indent=1))
    if runs:
        md, js = write_report(runs, args.out, "evaluation")
        if checks:
            (js.parent / "evaluation-checks.json").write_text(json.dumps(checks, indent=2))
        print(f"total {total:.1f} s for {len(runs)} protocol(s); wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
