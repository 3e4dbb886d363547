"""``make bench``: every benchmark in turn (about 20-30 minutes on 2 cores); results land in bench-results/."""

from __future__ import annotations

import importlib
import sys
import time

from benchmarks.common import machine

#: (module, argv) in the order they run; quality first, then speed.
RUNS: list[tuple[str, list[str]]] = [
    ("benchmarks.bench_evaluate", []),
    ("benchmarks.bench_chaney", ["--training", "repeated"]),
    ("benchmarks.bench_generate", []),
    ("benchmarks.bench_ingest", ["--events", "300000", "--repeats", "3"]),
    ("benchmarks.bench_feed", []),
    ("benchmarks.bench_simulate", []),
]


def main() -> int:
    print(f"machine: {machine()}", flush=True)
    only = set(sys.argv[1:])
    failed = []
    for mod, argv in RUNS:
        if only and mod.rsplit(".", 1)[1] not in only:
            continue
        print(f"\n=== {mod} {' '.join(argv)}", flush=True)
        t = time.perf_counter()
        try:
            m = importlib.import_module(mod)
            m.main(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                failed.append(mod)
        except Exception as e:  # keep going: one broken benchmark should not hide the others
            print(f"{mod} failed: {type(e).__name__}: {e}", flush=True)
            failed.append(mod)
        print(f"=== {mod}: {time.perf_counter() - t:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
