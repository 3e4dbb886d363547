"""``glassfeed audit``: audit metrics computed from one or more stores' logs alone; prints the findings and a table
with each number's interval and flag, writes JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from glassfeed.audit.logs import METRICS, AuditReport, audit_stores
from glassfeed.cli_support import cli_settings, out, require_store

HEAD = {"engagement_rate": "eng/impr", "divisive_share": "divisive", "topic_entropy": "entropy", "creator_gini": "gini"}


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command to the main CLI."""

    @app.command()
    def audit(
        ctx: typer.Context,
        db: list[Path] = typer.Option(..., "--db", help="store to audit (repeat to pool several stores)"),
        json_out: Path | None = typer.Option(None, "--json", help="also write the results here"),
        threshold: float | None = typer.Option(
            None, help="divisiveness at or above which a post counts as divisive (default: [audit] divisive_threshold)"
        ),
        since: float | None = typer.Option(None, help="only impressions at or after this epoch time"),
    ) -> None:
        """Served divisive share, topic entropy, creator Gini, engagement per impression, amplification; each with
        an interval (cluster bootstrap over viewers) and flagged when too few viewers or no effect can be told."""
        for p in db:
            require_store(p)  # a mistyped --db exits with one line; it never creates a store
        cfg = cli_settings(ctx).audit
        rep = audit_stores([str(p) for p in db], cfg, threshold=threshold, since_ts=since)
        print_report(rep)
        if json_out:
            json_out.write_text(json.dumps(rep.to_json(), indent=1, allow_nan=False))
            out.print(f"wrote {json_out}")


def print_report(rep: AuditReport) -> None:
    """The findings first (only the unflagged comparisons), then every number with its interval and flag."""
    m = rep.method
    conf = f"{m['confidence']:.0%}"
    out.print(
        f"[bold]Findings[/] ({conf} intervals: cluster bootstrap over viewers, {m['bootstrap_reps']:,} replicates, "
        f"seed {m['seed']}; a number needs {m['min_viewers']:,} viewers and {m['min_impressions']:,} impressions)"
    )
    for f in rep.findings:
        out.print(f"  - {escape(f)}")
    if not rep.findings:
        out.print("  none: " + ("every comparison is flagged below" if rep.comparisons else "no chronological group"))
    flagged = [c for c in rep.comparisons if c["flag"]]
    if flagged:
        why: dict[str, int] = {}
        for c in flagged:
            key = c["flag"].split(" (", 1)[0]
            why[key] = why.get(key, 0) + 1
        out.print(f"  not stated: {', '.join(f'{n} {k}' for k, n in why.items())}")
    t = Table(title=f"audit by policy (from request ids), {conf} intervals")
    t.add_column("policy")
    t.add_column("impr.", justify="right")
    t.add_column("viewers", justify="right")
    for metric in METRICS:
        t.add_column(HEAD[metric], justify="right")
    t.add_column("flag")
    for name, row in rep.rows.items():
        cells = [_with_interval(row.get(metric), rep.intervals[name][metric]) for metric in METRICS]
        t.add_row(name, _fmt(row["impressions"]), _fmt(row["viewers"]), *cells, escape(rep.flags[name] or ""))
    out.print(t)
    if rep.comparisons:
        a = Table(title=f"against chronological: differences and amplification (Huszar et al. 2022), {conf} intervals")
        for col in ("policy", "metric", "estimate", "interval", "flag"):
            a.add_column(col, justify="right" if col in ("estimate", "interval") else "left")
        for c in rep.comparisons:
            a.add_row(
                c["policy"],
                METRICS.get(c["metric"], c["metric"]),
                _fmt(c["estimate"]),
                _interval(c["low"], c["high"]),
                escape(c["flag"] or "finding"),
            )
        out.print(a)


def _with_interval(v: object, bounds: list[float | None]) -> str:
    return _fmt(v) if v is None else f"{_fmt(v)} {_interval(*bounds)}"


def _interval(lo: float | None, hi: float | None) -> str:
    return "–" if lo is None or hi is None else f"\\[{_num(lo)}, {_num(hi)}]"


def _num(x: float) -> str:
    return ("∞" if x > 0 else "-∞") if math.isinf(x) else f"{x:.3f}"


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
