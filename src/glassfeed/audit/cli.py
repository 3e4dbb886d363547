"""``glassfeed audit``: audit metrics computed from one or more stores' logs alone; prints a table, writes JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from glassfeed.audit.logs import audit_stores
from glassfeed.cli_support import out, require_store

COLUMNS = ("impressions", "viewers", "engagement_rate", "divisive_share", "topic_entropy", "creator_gini")
HEAD = ("impr.", "viewers", "eng/impr", "divisive", "entropy", "gini")


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command to the main CLI."""

    @app.command()
    def audit(
        db: list[Path] = typer.Option(..., "--db", help="store to audit (repeat to pool several stores)"),
        json_out: Path | None = typer.Option(None, "--json", help="also write the results here"),
        threshold: float = typer.Option(0.5, help="divisiveness at or above which a post counts as divisive"),
        since: float | None = typer.Option(None, help="only impressions at or after this epoch time"),
    ) -> None:
        """Served divisive share, topic entropy, creator Gini, engagement per impression, amplification."""
        for p in db:
            require_store(p)  # a mistyped --db exits with one line; it never creates a store
        rep = audit_stores([str(p) for p in db], threshold=threshold, since_ts=since)
        t = Table(title="audit by policy (from request ids)")
        t.add_column("policy")
        for c in HEAD:
            t.add_column(c, justify="right")
        for name, row in rep.rows.items():
            t.add_row(name, *[_fmt(row.get(c)) for c in COLUMNS])
        out.print(t)
        if rep.amplification:
            groups = sorted({g for a in rep.amplification.values() for g in a}, key=lambda s: (len(s), s))
            a = Table(title="amplification vs chronological (Huszar et al. 2022), by author community")
            a.add_column("policy")
            for g in groups:
                a.add_column(g.replace("community ", "c"), justify="right")
            for name, amp in rep.amplification.items():
                a.add_row(name, *[_fmt(amp.get(g)) for g in groups])
            out.print(a)
        if json_out:
            json_out.write_text(json.dumps(asdict(rep), indent=1))
            out.print(f"wrote {json_out}")


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
