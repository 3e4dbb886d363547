"""A launch gate's outcome (``sim.gate.GateResult``) as ``gate.json``, ``gate.md`` and a rich table for the console."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from glassfeed.experiments.analysis import BREACH, PASS
from glassfeed.sim.gate import GATE_METRICS, GateResult, GuardrailResult, SeedInterval


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _interval(iv: SeedInterval) -> dict[str, Any]:
    return {"n": iv.n, "mean": _num(iv.mean), "sd": _num(iv.sd), "low": _num(iv.low), "high": _num(iv.high)}


def _f(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def limit_words(g: GuardrailResult) -> str:
    """The guardrail as a bound on candidate / reference: "≥ 0.95x engagement's", "≤ 0.50x ...", or both."""
    lo, hi = g.ratio_bounds
    ref = f"{g.reference}'s"
    parts = ([f"≥ {lo:.2f}x"] if lo is not None else []) + ([f"≤ {hi:.2f}x"] if hi is not None else [])
    return f"{' and '.join(parts)} {ref}"


def holds_words(g: GuardrailResult) -> str:
    n = len(g.rel_per_seed)
    undefined = n - g.rel.n
    text = f"{g.within}/{n} seeds" + (" (every seed)" if g.holds_in_every_seed else "")
    return text + (f", undefined in {undefined}" if undefined else "")


def guardrail_dict(g: GuardrailResult) -> dict[str, Any]:
    lo, hi = g.ratio_bounds
    return {
        **g.guardrail.model_dump(mode="json"),
        "reference": g.reference,
        "limit": limit_words(g),
        "ratio_low_bound": lo,
        "ratio_high_bound": hi,
        "verdict": g.verdict,
        "ratio": _interval(g.ratio),
        "rel": _interval(g.rel),
        "within_seeds": g.within,
        "seeds": len(g.rel_per_seed),
        "holds_in_every_seed": g.holds_in_every_seed,
        "per_seed": {
            "candidate": [_num(v) for v in g.candidate_values],
            "reference": [_num(v) for v in g.reference_values],
            "rel": [_num(v) for v in g.rel_per_seed],
        },
    }


def to_dict(result: GateResult) -> dict[str, Any]:
    """Everything the gate measured, JSON-ready (NaN as null)."""
    spec = result.spec
    metrics = sorted({g.guardrail.metric for g in result.guardrails}, key=list(GATE_METRICS).index)
    return {
        "verdict": result.verdict,
        "candidate": result.candidate,
        "baseline": result.baseline,
        "gate": spec.model_dump(mode="json"),
        **result.meta,
        "seeds": [s.seed for s in result.seeds],
        "guardrails": [guardrail_dict(g) for g in result.guardrails],
        "policies": {p: {m: _interval(result.metric_summary(p, m)) for m in GATE_METRICS} for p in result.policies()},
        "per_seed": [
            {"seed": s.seed, "seconds": round(s.seconds, 2), "feed_requests": s.feed_requests, "values": s.values}
            for s in result.seeds
        ],
        "guardrail_metrics": metrics,
    }


def write_json(result: GateResult, path: Path) -> None:
    path.write_text(json.dumps(to_dict(result), indent=1, allow_nan=False) + "\n")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _verdict_mark(v: str) -> str:
    return {PASS: "**pass**", BREACH: "**breach**"}.get(v, f"**{v}**")


def markdown(result: GateResult) -> str:
    """The report: verdict, each guardrail with its interval, each policy's metrics, the ratios per seed."""
    spec, meta = result.spec, result.meta
    conf = f"{1 - spec.alpha:.0%}"
    lines = [
        f"# Launch gate: {result.candidate} against {result.baseline}: {result.verdict.upper()}",
        "",
        spec.description,
        "",
    ]
    if meta.get("command"):
        lines += [f"Command: `{meta['command']}`", ""]
    sim = meta.get("simulation", {})
    if sim:
        lines += [
            f"{len(result.seeds)} seeds ({', '.join(str(s.seed) for s in result.seeds)}), each a society of "
            f"{sim['users']:,} people x {sim['steps']} steps of {sim['step_hours']:g} h (active probability "
            f"{sim['active_prob']:g}, {sim['history_days']} days of history, retrain every {sim['retrain_every']} "
            f"steps) in which {', '.join(result.policies())} run side by side; "
            f"{result.seeds[0].feed_requests:,} feed requests per policy in seed {result.seeds[0].seed}."
            if result.seeds
            else "",
            "",
        ]
    lines += [
        f"## Guardrails ({conf} t-intervals across seeds)",
        "",
        "A guardrail passes only when its whole interval is within its limit; *seeds within* counts the seeds in "
        "which the limit held on their own.",
        "",
    ]
    rows = [
        [
            f"{g.guardrail.metric} ({GATE_METRICS[g.guardrail.metric]})",
            limit_words(g),
            f"{_f(g.ratio.mean)} [{_f(g.ratio.low)}, {_f(g.ratio.high)}]",
            f"{_f(g.rel.mean, 3)} [{_f(g.rel.low, 3)}, {_f(g.rel.high, 3)}]",
            holds_words(g),
            _verdict_mark(g.verdict),
        ]
        for g in result.guardrails
    ]
    lines += _md_table(
        [
            "metric",
            "limit (candidate / reference)",
            f"ratio, mean [{conf} CI]",
            "candidate / (scale x reference) - 1",
            "seeds within",
            "verdict",
        ],
        rows,
    )
    lines += [
        "",
        f"Gate: **{result.verdict}**"
        + (f" (breached: {', '.join(g.guardrail.metric for g in result.breached)})" if result.breached else ""),
        "",
    ]
    pols = result.policies()
    lines += [f"## Each policy's metrics (mean [{conf} t-interval] across seeds)", ""]
    metric_rows = []
    for m, label in GATE_METRICS.items():
        cells = [result.metric_summary(p, m) for p in pols]
        if all(c.n == 0 for c in cells):
            continue
        metric_rows.append([label, *(f"{_f(c.mean)} [{_f(c.low)}, {_f(c.high)}]" for c in cells)])
    lines += _md_table(["metric", *pols], metric_rows)
    lines += ["", "## Per seed: candidate / reference", ""]
    head = ["seed", *(f"{g.guardrail.metric} / {g.reference}'s" for g in result.guardrails), "seconds"]
    seed_rows = []
    for i, s in enumerate(result.seeds):
        ratios = []
        for g in result.guardrails:
            c, r = g.candidate_values[i], g.reference_values[i]
            ratios.append("–" if c is None or not r else f"{c / r:.3f} ({_f(c)} / {_f(r)})")
        seed_rows.append([str(s.seed), *ratios, f"{s.seconds:.0f}"])
    lines += _md_table(head, seed_rows)
    if meta.get("timing"):
        t = meta["timing"]
        lines += [
            "",
            "## Time",
            "",
            f"{t['wall_s']:.0f} s wall for {len(result.seeds)} seeds on {t['runner']}; seconds per seed "
            f"(in its worker): median {t['median_seed_s']:.0f}, sum {t['sum_seed_s']:.0f}. Machine: "
            f"{meta.get('machine', {}).get('cpu', '?')}, {meta.get('machine', {}).get('cores', '?')} cores, "
            f"1-minute load {t['load_start']:.1f} at the start and {t['load_end']:.1f} at the end.",
        ]
    return "\n".join(lines) + "\n"


def write_markdown(result: GateResult, path: Path) -> None:
    path.write_text(markdown(result))


def write_reports(result: GateResult, folder: Path) -> tuple[Path, Path]:
    """``folder/gate.json`` and ``folder/gate.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    js, md = folder / "gate.json", folder / "gate.md"
    write_json(result, js)
    write_markdown(result, md)
    return js, md


def console_table(result: GateResult) -> Table:
    """The guardrails as a rich table: limit, ratio with its interval, seeds within, verdict."""
    conf = f"{1 - result.spec.alpha:.0%}"
    table = Table(
        title=f"gate: {result.candidate} vs {result.baseline}, {len(result.seeds)} seeds: "
        f"[bold]{result.verdict.upper()}[/]",
        title_justify="left",
    )
    for col, just in (
        ("metric", "left"),
        ("limit", "left"),
        (f"ratio [{conf} CI]", "right"),
        ("seeds within", "right"),
        ("verdict", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    colour = {PASS: "green", BREACH: "red"}
    for g in result.guardrails:
        table.add_row(
            g.guardrail.metric,
            limit_words(g),
            f"{_f(g.ratio.mean)} [{_f(g.ratio.low)}, {_f(g.ratio.high)}]",
            holds_words(g),
            f"[{colour.get(g.verdict, 'yellow')}]{g.verdict}[/]",
        )
    return table


__all__ = ["console_table", "guardrail_dict", "limit_words", "markdown", "to_dict", "write_reports"]
