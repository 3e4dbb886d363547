"""Results as a markdown table and a JSON file, with the machine they were measured on."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, cores and thread limits, for quoting beside any timing."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _params(params: dict[str, Any]) -> str:
    if "members" in params:
        inner = "; ".join(f"{m}: {_params(p)}" for m, p in params["members"].items())
        return f"{inner}; weights {params['weights']}"
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def to_markdown(run: dict[str, Any]) -> str:
    """One protocol run as markdown: our models, then the published rows, then the split and machine."""
    cols = run["columns"]
    head = ["model", *cols, f"valid {run['selected_on'].split()[-1]}", "fit s", "rank s", "params"]
    timing = (
        f"fit s / rank s: median of {run['timing_repeats']} runs"
        if run.get("timing_repeats", 1) > 1
        else "fit s / rank s: one run"
    )
    lines = [
        f"### {run['protocol']} ({run['dataset']})",
        "",
        run["description"],
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in run["results"]:
        row = [
            f"glassfeed {r['model']}",
            *(_fmt(r["metrics"][c]) for c in cols),
            _fmt(r["valid_score"]),
            f"{r['fit_seconds']:.2f}",
            f"{r['rank_seconds']:.2f}",
            _params(r["params"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    for name, metrics in run["published"].items():
        row = [f"published {name}", *(_fmt(metrics[c]) if c in metrics else "" for c in cols), "", "", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    stats = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in run["stats"].items())
    lines += [
        "",
        f"Split: {stats}. Users counted: {run['results'][0]['metrics']['users']:,}."
        if run["results"]
        else f"Split: {stats}.",
        f"Published numbers: {run['source']}." if run["published"] else "",
        f"{timing}; 'valid' is the validation score the parameters were chosen on.",
        f"Total {run['elapsed_seconds']:.1f} s (split built in {run['build_seconds']:.2f} s).",
    ]
    if "machine" in run:
        m = run["machine"]
        lines.append(
            f"Machine: {m['cpu']}, {m['usable_cores']} usable of {m['cores']} cores, {m['platform']}, "
            f"Python {m['python']}."
        )
    return "\n".join(lines) + "\n"


def write_report(runs: list[dict[str, Any]], out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.md`` and ``stem.json`` under ``out_dir`` (created); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text("\n".join(to_markdown(r) for r in runs), encoding="utf-8")
    js.write_text(json.dumps(runs, indent=2, default=float), encoding="utf-8")
    return md, js
