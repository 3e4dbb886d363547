"""CLI commands for the feed: ``train``, ``policy list|describe``, and ``feed`` (print a page with reasons)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from glassfeed.cli_support import cli_settings, console, open_ingestor, out
from glassfeed.feed.policy import PolicyError, describe, load_policies, load_policy_file
from glassfeed.feed.service import FeedError, FeedService

policy_app = typer.Typer(help="Ranking policies written as data.", no_args_is_help=True)


def _fail(msg: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
    raise typer.Exit(2)


def _service(ctx: typer.Context, db: Path | None) -> FeedService:
    """A FeedService over the run's settings with ``--db`` applied, ranking at the store's data time."""
    settings = cli_settings(ctx, db, serving={"clock": "data"})
    return FeedService(open_ingestor(settings), settings)  # a missing store exits with one line


def _policies_dir(ctx: typer.Context, option: Path | None) -> str | Path | None:
    """``--policies-dir``, else the settings' ``serving.policies_dir`` (empty: the built-in presets only)."""
    return option or cli_settings(ctx).serving.policies_dir or None


def train(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="SQLite store path"),
    max_rows: int = typer.Option(400_000, help="logged impressions sampled for the heads"),
) -> None:
    """Train the engagement heads, light ranker, ALS factors and bridging sides; print per-head AUC/log-loss
    on a time-based holdout beside the popularity baseline."""
    svc = _service(ctx, db)
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        try:
            report = svc.retrain(max_rows=max_rows, progress=tick)
        except ValueError as e:
            _fail(str(e))
    out.print(
        f"trained on {report.n_train:,} impressions, calibrated on {report.n_cal:,}, "
        f"tested on the newest {report.n_test:,} ({report.seconds:.1f} s)"
    )
    print(report.table())  # a Markdown table: plain text, so a pipe or a file gets it unwrapped


@policy_app.command("list")
def policy_list(
    ctx: typer.Context, policies_dir: Path | None = typer.Option(None, help="extra folder of policy TOML files")
) -> None:
    """The policies on offer."""
    try:
        pols = load_policies(_policies_dir(ctx, policies_dir))
    except PolicyError as e:
        _fail(str(e))
    t = Table("name", "title", "profiling", "ranker")
    for p in pols.values():
        t.add_row(p.name, p.title, "yes" if p.profiling else "no", p.ranker)
    out.print(t)


@policy_app.command("describe")
def policy_describe(
    ctx: typer.Context, name: str, policies_dir: Path | None = typer.Option(None, help="extra policy folder")
) -> None:
    """Print the plain-language main-parameters statement (EU DSA Art. 27) generated from the policy file."""
    try:
        if name.endswith(".toml"):
            pol = load_policy_file(name)
        else:
            pols = load_policies(_policies_dir(ctx, policies_dir))
            if name not in pols:
                _fail(f"unknown policy {name!r}; expected one of {', '.join(pols)}")
            pol = pols[name]
    except (PolicyError, FileNotFoundError) as e:
        _fail(str(e))
    print(describe(pol))


def feed(
    ctx: typer.Context,
    user: str,
    db: Path | None = typer.Option(None, "--db"),
    policy: str | None = None,
    limit: int = 10,
    cursor: str | None = typer.Option(None, help="continue from a page's cursor (printed after each page)"),
    pages: int = typer.Option(1, min=1, help="print this many pages, following the cursor"),
) -> None:
    """Print pages of USER's feed: each post's text, author, score, reason and top contributions.

    The command logs no impressions (it is a preview): pages of one run never repeat a post, but a cursor from
    an earlier run only skips the posts the server logged as seen."""
    svc = _service(ctx, db)
    n = 0
    for page_no in range(pages):
        try:
            page = svc.feed(user, policy=policy, limit=limit, cursor=cursor, log_impressions=False)
        except FeedError as e:
            _fail(str(e))
        if page["notice"]:
            out.print(f"[yellow]{escape(page['notice'])}[/]")
        if pages > 1:
            out.print(f"[bold]page {page_no + 1}[/]")
        t = Table("#", "post", "author", "text", "score", "why", "top contributions")
        for it in page["items"]:
            n += 1
            contrib = ", ".join(f"{c['head']} {c['contribution']:+.3f}" for c in it["top_contributions"])
            t.add_row(
                str(n),
                escape(it["post"]),
                escape("@" + it["author_handle"]),
                escape(it["text"] or ""),
                f"{it['score']:.3f}",
                escape(it["reason"]),
                contrib,
            )
        out.print(t)
        cursor = page["cursor"]
        if cursor is None:
            out.print("end of feed: no more eligible posts")
            return
    out.print(f"next page: --cursor {cursor}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("feed")(feed)
    app.add_typer(policy_app, name="policy")
