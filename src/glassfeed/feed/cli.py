"""CLI commands for the feed: ``train``, ``policy list|describe``, and ``feed`` (print a page with reasons)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
out = Console()
policy_app = typer.Typer(help="Ranking policies written as data.", no_args_is_help=True)


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(2)


def _service(db: Optional[Path], clock: str):
    from glassfeed.config import load_settings
    from glassfeed.feed.service import FeedService
    from glassfeed.ingest import Ingestor
    from glassfeed.store import open_store

    s = load_settings(db_path=db) if db else load_settings()
    if not Path(s.db_path).exists():
        _fail(f"no store at {s.db_path}; create one with `glassfeed generate` or `glassfeed import`")
    return FeedService(Ingestor(open_store(s.db_path, s.synchronous), s.limits), clock=clock)


def train(db: Optional[Path] = typer.Option(None, "--db", help="SQLite store path"),
          max_rows: int = typer.Option(400_000, help="logged impressions sampled for the heads")) -> None:
    """Train the engagement heads, light ranker, ALS factors and bridging sides; print per-head AUC/log-loss
    on a time-based holdout beside the popularity baseline."""
    svc = _service(db, "data")
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        try:
            report = svc.retrain(max_rows=max_rows, progress=tick)
        except ValueError as e:
            _fail(str(e))
    out.print(f"trained on {report.n_train:,} impressions, calibrated on {report.n_cal:,}, "
              f"tested on the newest {report.n_test:,} ({report.seconds:.1f} s)")
    out.print(report.table())


@policy_app.command("list")
def policy_list(policies_dir: Optional[Path] = typer.Option(None, help="extra folder of policy TOML files")) -> None:
    """The policies on offer."""
    from glassfeed.feed.policy import PolicyError, load_policies

    try:
        pols = load_policies(policies_dir)
    except PolicyError as e:
        _fail(str(e))
    t = Table("name", "title", "profiling", "ranker")
    for p in pols.values():
        t.add_row(p.name, p.title, "yes" if p.profiling else "no", p.ranker)
    out.print(t)


@policy_app.command("describe")
def policy_describe(name: str, policies_dir: Optional[Path] = typer.Option(None, help="extra policy folder")) -> None:
    """Print the plain-language main-parameters statement (EU DSA Art. 27) generated from the policy file."""
    from glassfeed.feed.policy import PolicyError, describe, load_policies, load_policy_file

    try:
        if name.endswith(".toml"):
            pol = load_policy_file(name)
        else:
            pols = load_policies(policies_dir)
            if name not in pols:
                _fail(f"unknown policy {name!r}; expected one of {', '.join(pols)}")
            pol = pols[name]
    except (PolicyError, FileNotFoundError) as e:
        _fail(str(e))
    print(describe(pol))


def feed(user: str, db: Optional[Path] = typer.Option(None, "--db"), policy: Optional[str] = None,
         limit: int = 10) -> None:
    """Print one page of USER's feed with the reason and top contributions of every item."""
    from glassfeed.feed.service import FeedError

    svc = _service(db, "data")
    try:
        page = svc.feed(user, policy=policy, limit=limit, log_impressions=False)
    except FeedError as e:
        _fail(str(e))
    if page["notice"]:
        out.print(f"[yellow]{page['notice']}[/]")
    t = Table("#", "post", "author", "score", "why", "top contributions")
    for i, it in enumerate(page["items"]):
        contrib = ", ".join(f"{c['head']} {c['contribution']:+.3f}" for c in it["top_contributions"])
        t.add_row(str(i + 1), it["post"], "@" + it["author_handle"], f"{it['score']:.3f}", it["reason"], contrib)
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("feed")(feed)
    app.add_typer(policy_app, name="policy")
