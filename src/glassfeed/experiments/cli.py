"""``glassfeed experiments``: create an experiment from a TOML file (the API's JSON keys; examples in
``policies/experiments/``), start, stop, list, and write its report (JSON and HTML) from a store's logs. The same
ExperimentService as the API's, on a FeedService over the store (a running server sees the change within
``[experiments] refresh_s``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from glassfeed.cli_support import cli_settings, console, handled, open_ingestor, out
from glassfeed.settings import Settings

if TYPE_CHECKING:
    from glassfeed.experiments.service import ExperimentService

group = typer.Typer(help="Online experiments: create from TOML, start, stop, list, report.", no_args_is_help=True)
_DB = typer.Option(None, "--db", help="the store (default: [store] path)")


@contextmanager
def _service(settings: Settings) -> Iterator[ExperimentService]:
    """The ExperimentService with every lever it can set (feed, notifications, ads), closed afterwards."""
    from glassfeed.ads.service import AdService
    from glassfeed.experiments.service import ExperimentService
    from glassfeed.feed.service import FeedService
    from glassfeed.notifications.service import NotificationService

    ing = open_ingestor(settings)
    feed = FeedService(ing, settings.replace(serving={"tail_interval_ms": 0}))
    ads = AdService(feed)
    try:
        yield ExperimentService(feed, NotificationService(feed, settings))
    finally:
        ads.close()
        feed.close()
        ing.store.close()


@group.command()
def create(
    ctx: typer.Context, file: Path = typer.Argument(..., help="the experiment's TOML file"), db: Path | None = _DB
) -> None:
    """Create a draft from FILE (or replace the draft of that name); a refusal names the field."""
    from glassfeed.experiments.model import load_spec_file

    settings = cli_settings(ctx, db)
    with handled(), _service(settings) as svc:
        got = svc.create(load_spec_file(file))
    console.print(f"experiment {got['name']!r} created ({got['layer']} layer, {len(got['arms'])} arms): draft")


@group.command()
def start(ctx: typer.Context, name: str, db: Path | None = _DB) -> None:
    """Start a draft: its layer's people in its share are assigned to its arms from now."""
    settings = cli_settings(ctx, db)
    with handled(), _service(settings) as svc:
        got = svc.start(name)
    console.print(f"experiment {name!r} running on buckets {got['buckets'][0]}-{got['buckets'][1]} of its layer")


@group.command()
def stop(ctx: typer.Context, name: str, db: Path | None = _DB) -> None:
    """Stop a running experiment (its report stays)."""
    settings = cli_settings(ctx, db)
    with handled(), _service(settings) as svc:
        svc.stop(name)
    console.print(f"experiment {name!r} stopped")


@group.command(name="list")
def list_(ctx: typer.Context, db: Path | None = _DB) -> None:
    """Every experiment with its layer, state and arms."""
    settings = cli_settings(ctx, db)
    with handled(), _service(settings) as svc:
        exps = svc.all()
    for e in exps:
        arms = ", ".join(f"{a['name']} {a['share']:.0%}" for a in e["arms"])
        out.print(f"{e['name']}  {e['layer']}  {e['status']}  {arms}", markup=False)


@group.command()
def report(
    ctx: typer.Context,
    name: str,
    db: Path | None = _DB,
    html: Path | None = typer.Option(None, "--html", help="also write the report as an HTML page here"),
) -> None:
    """Print the experiment's report as JSON (exposures, SRM, metrics per arm, guardrail verdicts)."""
    from glassfeed.experiments.service import report_html

    settings = cli_settings(ctx, db)
    with handled(), _service(settings) as svc:
        rep = svc.report(name)
    if html is not None:
        html.write_text(report_html(rep), "utf-8")
    out.print(json.dumps(rep, indent=1), markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="experiments")


__all__ = ["group", "register"]
