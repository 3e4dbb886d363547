"""Offline evaluation benchmark: every protocol with its default models, timed, beside published numbers.

Run ``python -m benchmarks.bench_evaluate`` from the repository root. It tunes each model on validation data,
scores the test split, prints the tables and the machine, and writes ``bench-results/evaluation.md`` and
``bench-results/evaluation.json``. Protocols whose dataset is absent are skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import time

# Two cores in total: cap BLAS / OpenMP pools before numpy is imported (implicit models use one thread each).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

from rich.console import Console  # noqa: E402

from glassfeed.evaluate.cli import run_with_progress  # noqa: E402
from glassfeed.evaluate.datasets import available  # noqa: E402
from glassfeed.evaluate.protocols import PROTOCOLS  # noqa: E402
from glassfeed.evaluate.report import machine_info, to_markdown, write_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated protocol names")
    parser.add_argument("--out", default="bench-results", help="output folder (gitignored)")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per final model (median reported)")
    args = parser.parse_args(argv)
    console = Console()
    machine = machine_info()
    console.print(f"machine: {machine['cpu']}; {machine['usable_cores']} usable of {machine['cores']} cores; "
                  f"{machine['platform']}; Python {machine['python']}; threads {machine['threads']}",
                  markup=False, highlight=False)
    runs, t0 = [], time.perf_counter()
    for name in [p.strip() for p in args.protocols.split(",") if p.strip()]:
        protocol = PROTOCOLS[name]
        if not available(protocol.dataset):
            console.print(f"skipped {name}: dataset {protocol.dataset!r} not found under the data directory")
            continue
        runs.append(run_with_progress(protocol, list(protocol.models), console, repeats=args.repeats))
    total = time.perf_counter() - t0
    for run in runs:
        print(to_markdown(run))
    if runs:
        md, js = write_report(runs, args.out, "evaluation")
        print(f"total {total:.1f} s for {len(runs)} protocol(s); wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
